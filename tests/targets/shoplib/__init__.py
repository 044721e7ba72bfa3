"""A small shop library: the code the end-to-end patch tests change in place.

Lines tagged `# L:name` are looked up by the tests (never hard-code line numbers).
"""
import asyncio
import functools

TAX = 0.2


def price(n, unit=10):
    """Price of n items."""
    return n * unit  # L:price-return


def counted(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return func(*args, **kwargs)
    wrapper.calls = 0
    return wrapper


@counted
def rebate(total):
    return total


def make_rounder(digits):
    def rounder(x):
        return round(x, digits)
    return rounder


rounder = make_rounder(2)  # a closure kept at module level


def quote(n, unit=10, *, tax=TAX, label="q"):
    return "%s:%s" % (label, rounder(price(n, unit) * (1 + tax)))


def items(n):
    for i in range(n):
        yield price(1) * i


def shipping(n):
    return 5  # not used by shop_service: only tests call it


async def fetch_price(n):
    await asyncio.sleep(0)
    return price(n)


class Base:
    def describe(self):
        return "base"


class Cart(Base):
    currency = "EUR"

    def __init__(self):
        self.lines = []
        self._discount = 0

    def add(self, n):
        self.lines.append(n)
        return self

    def total(self):
        gross = sum(price(n) for n in self.lines)  # L:total-gross
        return gross - self._discount  # L:total-return

    @classmethod
    def of(cls, *ns):
        cart = cls()
        for n in ns:
            cart.add(n)
        return cart

    @staticmethod
    def fmt(amount):
        return "%.2f" % amount

    @property
    def discount(self):
        return self._discount

    @discount.setter
    def discount(self, value):
        self._discount = value

    def describe(self):
        return "cart<" + super().describe() + ">"


exec("def made(x):\n    return x * 2\n")  # a function without source: lu cannot instrument it
