"""The simulated source: scenario files → the advert bytes real bands would send, as receivers would hear them."""
