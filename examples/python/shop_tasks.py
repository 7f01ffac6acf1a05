"""Task handlers of the README's tour, run by the Python worker library
(clients/python): `python -m cyme_worker --tasks examples/python/shop_tasks.py`.
"""
from cyme_worker import task


@task
def total(args):
    """The sum of the prices of an order's items."""
    return sum(item["price"] for item in args["items"])


@task("refund")
def issue_refund(args):
    """Refunds a positive amount; anything else fails the task."""
    if args["amount"] <= 0:
        raise ValueError("nothing to refund")
    return {"refunded": args["amount"]}
