"""What the operating system says and allows, for both processes: usable CPUs and memory,
``/proc`` samples, and the process-wide settings applied at start-up (user, umask, title)."""
