"""Sessions: state machine, registry, idle timers, quotas, usage metering, drive channel."""
