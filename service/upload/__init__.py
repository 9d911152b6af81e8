"""Step 1 of the flow, the HTTP request → a stored file and a queued job row.

`submit` takes a request through admission (room in the queue, free disk), streams its body
to storage (`receive`: `request` reads the headers and chunks, `multipart` the form), checks
its digest, and records the job (`recorder`: group commit). Nothing here runs a job.
"""
