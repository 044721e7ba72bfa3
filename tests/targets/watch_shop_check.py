"""The --check module of the lu watch tests: runs inside the target after each save."""
import unittest

import watch_shop


class ShopCheck(unittest.TestCase):
    def test_price_positive(self):
        self.assertGreater(watch_shop.price(1), 0)
