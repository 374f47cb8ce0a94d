"""The team farm: one PostgreSQL store and job queue, an agent per machine that
holds devices, submitters anywhere (docs/DEVICES.md, "The team farm").

Modules: ``queue`` (the job queue through procrastinate), ``claims`` (which agent
serves which device), ``submit`` (queue a run, follow it), ``janitor`` (jobs of
dead agents, devices no agent holds, finished runs), ``agent`` (the process on
each machine with devices).
"""
