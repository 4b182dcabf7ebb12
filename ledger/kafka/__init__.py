"""The one Kafka edge: client factories, error translation, topic admin, the block stream.

The SDK (``ledger.client``), the processors (``streams``) and the local stack (``ledger.local``)
build every consumer, producer and admin client here, so a Kafka setting is written once.
"""
