from __future__ import annotations

import datetime

CENTS_PER_DAY = 10


def fine_for(*, due: datetime.date, returned: datetime.date, price_cents: int) -> int:
    late = max(0, (returned - due).days)
    return min(late * CENTS_PER_DAY, price_cents)
