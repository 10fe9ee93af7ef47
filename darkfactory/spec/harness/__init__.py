"""Modules copied, as they are, next to generated acceptance tests (see each module's doc).

They run inside the sandbox, where Dark Factory itself is not importable: each one imports
only the standard library and the packages Dark Factory depends on.
"""
