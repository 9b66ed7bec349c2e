"""Print the cost of one password hash and one verification at the configured Argon2id parameters.

.venv/bin/python bench/hash_cost.py
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from argon2 import PasswordHasher  # noqa: E402

from config import DEFAULTS  # noqa: E402


def median_ms(action, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    params = {
        "time_cost": int(os.environ.get("PASSWORD_HASH_TIME_COST", DEFAULTS["PASSWORD_HASH_TIME_COST"])),
        "memory_cost": int(os.environ.get("PASSWORD_HASH_MEMORY_KIB", DEFAULTS["PASSWORD_HASH_MEMORY_KIB"])),
        "parallelism": int(os.environ.get("PASSWORD_HASH_PARALLELISM", DEFAULTS["PASSWORD_HASH_PARALLELISM"])),
    }
    hasher = PasswordHasher(**params)
    sample = "An example passphrase, 2 words!"
    stored = hasher.hash(sample)
    print(f"Argon2id t={params['time_cost']} m={params['memory_cost']} KiB p={params['parallelism']}")
    print(f"hash:   {median_ms(lambda: hasher.hash(sample), 15):.1f} ms (median of 15)")
    print(f"verify: {median_ms(lambda: hasher.verify(stored, sample), 15):.1f} ms (median of 15)")


if __name__ == "__main__":
    main()
