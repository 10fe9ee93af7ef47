"""A reference implementation of examples/specs/library-unittest (for the spec's tests)."""
