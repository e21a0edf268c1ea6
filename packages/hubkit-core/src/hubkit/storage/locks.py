"""hubkit's PostgreSQL advisory locks, all in one place so that no two mechanisms share a key by accident. Every
lock is the two-key form ``(class, key)``; a class is "hk" (0x686B) followed by its number."""

from __future__ import annotations

DUTY_LOCKS = 0x686B01  # runtime/leases.py: one per singleton duty, key = a hash of the duty's name
INSTANCE_LOCKS = 0x686B02  # runtime/leases.py: one per hub process, a random key (its owner name)
SINGLE_LOCKS = 0x686B03  # the locks of which there is one, by key:
MIGRATION_LOCK = (SINGLE_LOCKS, 0)  # storage/migrate.py: one schema upgrade at a time
QUEUE_LOCK = (SINGLE_LOCKS, 1)  # spawn/pg_queue.py: one admission decision at a time
LOGIN_LOCKS = 0x686B04  # auth/pg_ratelimit.py: one per login bucket, key = hashtext of the bucket
