// The page: uploads on the left, the jobs table on the right, one job in detail below.
// `#/jobs/<id>` in the address opens a job, so a job can be linked and Back closes it.

import { askForKey, forgetKey, keyState, onKeyChange, setKeyPrompt } from "./api.js";
import { promptForKey } from "./dialogs.js";
import { JobView } from "./job-view.js";
import { JobsTable } from "./jobs.js";
import { setUpUploads } from "./uploads.js";

const JOB_ROUTE = /^#\/jobs\/([^/]+)$/;

setKeyPrompt(promptForKey);

const table = new JobsTable({ onDeleted: (id) => deleted(id) });
const view = new JobView(document.getElementById("job-view"), {
  onDeleted: (id) => deleted(id),
  onChanged: () => table.refresh(),
});

function deleted(id) {
  if (view.id === id) location.hash = "#/";
  table.forget(id);
}

function route() {
  const match = JOB_ROUTE.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  table.select(id);
  if (id) view.open(id);
  else if (view.id) {
    view.close();
    document.getElementById("jobs-title").focus({ preventScroll: true });
  }
}

setUpUploads({
  onAccepted: () => table.refresh(),
  onFinished: () => table.refresh(),
});

const keyButton = document.getElementById("key-button");
function showKeyState() {
  const state = keyState();
  keyButton.hidden = state === "none";
  keyButton.textContent = state === "set" ? "Forget the API key" : "Enter an API key";
}
keyButton.addEventListener("click", async () => {
  if (keyState() === "set") {
    forgetKey();
    return;
  }
  if (await askForKey("Enter an API key of this service.", { explicit: true })) {
    table.refresh();
    if (view.id) {
      const id = view.id;
      view.close();
      view.open(id);
    }
  }
});
onKeyChange(showKeyState);
showKeyState();

window.addEventListener("hashchange", route);
route();
table.refresh();
