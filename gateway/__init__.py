"""Smart Chumphae village gateway: scan → decode → locate → match → detect → outbox → uplink.

Runs at a village site (e.g. a Raspberry Pi at the health-promoting hospital)
as `chumphae-gateway`, or inside another program as an asyncio task via
`gateway.service.run_gateway`.
"""

__version__ = "0.1.0"
