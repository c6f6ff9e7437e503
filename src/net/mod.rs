//! Network transports for the reactor.
