"""``python -m darkfactory`` is the ``darkfactory`` command."""

from darkfactory.cli import main

raise SystemExit(main())
