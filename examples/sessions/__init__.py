"""Sessions across workers: a per-process dict (broken) next to Redis (works); see README.md."""
