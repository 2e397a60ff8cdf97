"""Delivery channels: who is told about an alert change, and through what.

The live feed is one channel and needs no call here: its `feed_event` row is
written in the alert's own transaction (see `chumphae.feed`). Other channels
(SMS, LINE, a phone push) implement `Channel` and are registered at start;
the log channel below is the outbox until then.
"""
