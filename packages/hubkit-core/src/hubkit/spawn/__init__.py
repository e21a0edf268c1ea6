"""The spawn engine: admission queue, per-phase timeouts, progress, polling, adoption. No web imports."""
