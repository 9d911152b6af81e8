"""The job record as clients see it: find and list jobs (`queries`, `cursors`), serve and wait
for their state (`views`), read their pages, row errors and result (`reading`), cancel or
delete them (`control`). Moving a job between states is the runner's (`service.runner`).
"""
