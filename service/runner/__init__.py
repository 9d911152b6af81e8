"""Step 2 of the flow, a queued job → parsed output and a final state.

`executors` decide where a job runs (a pool of worker processes of the API, or Celery
workers); a worker process runs `worker.run_job`, which calls `execute`: claim the job
(`lifecycle`, the only code that moves a job between states), parse it with
`service.parsing` while `progress` writes progress and heartbeats, publish the output
(`outputs`), record the end. `sweeper` recovers jobs whose worker died and removes expired
ones.
"""
