"""Fix the bulk discount of the running shop service (examples/shop_service.py).

    lu patch PID examples/patches/fix_price.py
    lu revert PID ID          # back to the original code

The new body replaces shoplib.price in place: `from shoplib import price` in
the service, Cart.total and every other reference see it at once.
"""
from lu_payloads import Redefine, UpdateManager

BULK_DISCOUNT = 0.9  # pay 90%: 10% off


def price(item, qty):
    """Price of qty items of one kind, with the bulk discount (10% off from 10 items)."""
    total = PRICES[item] * qty
    if qty >= BULK:
        total = total * BULK_DISCOUNT
    return round(total, 2)


# BULK_DISCOUNT is new to shoplib: lu copies it into the module (and removes it on revert).
UpdateManager.apply_update(Redefine("shoplib", None, {"shoplib.price": price}))
