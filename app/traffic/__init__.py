"""Traffic control shared by the ``rate-limit`` and ``budget`` plugins: token estimates, the
sliding windows and spend ledgers they keep (in Redis, or in memory for the embedded default),
the settles they run after the answer, and the usage report the admin API shows."""
