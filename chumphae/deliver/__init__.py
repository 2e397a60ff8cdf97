"""Delivery: who is told about an alert change, on which channel, and the worker that makes sure they are.

Notices are rows written with the alert change (`outbox`); the worker sends
them through the channels (`line`, `sms`, `webhook`; the live feed's row is
its own delivery) with retries, and escalates when a notice cannot get
through. docs/delivery.md has the whole story.
"""
