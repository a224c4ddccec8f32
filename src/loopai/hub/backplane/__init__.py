"""Backplanes carry events between hub instances and keep each topic's history."""

from loopai.hub.backplane.base import Backplane, BackplaneHealth, Event, EventListener, HistoryPage

__all__ = ["Backplane", "BackplaneHealth", "Event", "EventListener", "HistoryPage"]
