// Deleting an app: its name typed to confirm, and whether its resources go too (cascade).
import { useState } from 'preact/hooks';
import { deleteApplication, type AppRef } from '../api/applications';
import { qualifiedName } from '../lib/application';
import { Dialog } from './Dialog';

export function DeleteDialog({ app, onClose, onDeleted }: { app: AppRef; onClose: () => void; onDeleted: () => void }) {
  const name = app.name;
  const [typed, setTyped] = useState('');
  const [cascade, setCascade] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await deleteApplication(app, cascade);
      onDeleted();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={`Delete ${qualifiedName(app)}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form="delete-form" class="button danger" disabled={busy || typed !== name}>
            {busy ? 'Deleting…' : 'Delete'}
          </button>
        </>
      }
    >
      <form id="delete-form" class="form" onSubmit={(e) => void submit(e)}>
        {error ? (
          <p class="banner banner-bad" role="alert">
            {error}
          </p>
        ) : null}
        <fieldset class="options">
          <legend>Its resources in the cluster</legend>
          <label class="check">
            <input type="radio" name="cascade" checked={cascade} onChange={() => setCascade(true)} /> Delete them too (cascade)
          </label>
          <label class="check">
            <input type="radio" name="cascade" checked={!cascade} onChange={() => setCascade(false)} /> Keep them running
            (non-cascading)
          </label>
        </fieldset>
        <label class="field">
          <span>
            Type <strong>{name}</strong> to confirm
          </span>
          <input type="text" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" autoFocus />
        </label>
      </form>
    </Dialog>
  );
}
