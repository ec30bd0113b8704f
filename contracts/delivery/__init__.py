"""The delivery rules every consumer follows (see consumer.py for the whole story)."""

from contracts.delivery.consumer import Delivery
from contracts.delivery.deadletter import DeadLetter, dead_letter, list_dead, replay
from contracts.delivery.idempotency import apply_once
from contracts.delivery.metrics import DeliveryMetrics

__all__ = [
    "DeadLetter",
    "Delivery",
    "DeliveryMetrics",
    "apply_once",
    "dead_letter",
    "list_dead",
    "replay",
]
