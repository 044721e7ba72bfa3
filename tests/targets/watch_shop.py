"""A shop module that the lu watch tests copy to a temp directory and edit."""

TAX = 1


def helper(x):
    return x * 2


def price(n):
    return helper(n) + TAX


class Base:
    def hello(self):
        return "base"


class Cart(Base):
    def __init__(self, items):
        self.items = list(items)

    def total(self):
        return sum(self.items)

    def hello(self):
        return "cart"


def make_counter():
    n = [0]

    def inc():
        n[0] += 1
        return n[0]
    return inc


counter = make_counter()


def on_event():
    return "event-v1"


TICKS = [0]


def tick():
    TICKS[0] += 1
    return "tick-v1"


async def serve(gate):
    await gate.wait()
    return "serve-v1:" + await after()


async def after():
    return "after-v1"


def boom():
    raise ValueError("boom")


def discount(x):
    return x
