"""The shop's pricing code (used by shop_service.py).

It has a bug for lu to fix in the running service: the bulk discount is meant
for 10 items or more, and takes 10% off; as written it starts at 11 and takes
90% off.  examples/patches/fix_price.py fixes it without a restart.
"""
PRICES = {"apple": 0.5, "pear": 0.75, "melon": 3.0}
BULK = 10


def price(item, qty):
    """Price of qty items of one kind, with the bulk discount."""
    total = PRICES[item] * qty
    if qty > BULK:
        total = total * 0.1
    return round(total, 2)


class Cart:
    def __init__(self):
        self.lines = []

    def add(self, item, qty=1):
        self.lines.append((item, qty))
        return self

    def total(self):
        return round(sum(price(item, qty) for item, qty in self.lines), 2)
