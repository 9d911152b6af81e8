// Cancelling and deleting a job, each confirmed first. Both resolve true if done.

import { jobs } from "./api.js";
import { confirmAction } from "./dialogs.js";

export async function cancelJob(job) {
  const confirmed = await confirmAction(
    `Cancel the job for ${job.file.name}? Its parse stops and the job ends as cancelled.`,
    "Cancel job",
  );
  if (!confirmed) return false;
  await jobs.cancel(job.id);
  return true;
}

export async function deleteJob(job) {
  const confirmed = await confirmAction(
    `Delete the job for ${job.file.name}? The upload, the result and the row errors are removed.`,
    "Delete job",
  );
  if (!confirmed) return false;
  await jobs.remove(job.id);
  return true;
}
