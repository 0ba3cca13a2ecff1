"""The discrete-event model (simpy): components, the two substrates as wiring, the engine."""
