// Modal dialogs and side drawers on the native <dialog>: focus stays inside, Escape closes, and focus
// returns to what opened it.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

interface DialogProps {
  title: string;
  onClose: () => void;
  variant?: 'modal' | 'drawer';
  children: ComponentChildren;
  footer?: ComponentChildren;
  /** Shown beside the title (status icons, links). */
  aside?: ComponentChildren;
}

export function Dialog({ title, onClose, variant = 'modal', children, footer, aside }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const closeRef = useRef(onClose);
  closeRef.current = onClose;

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    el.showModal();
    const cancel = (e: Event) => {
      e.preventDefault();
      closeRef.current();
    };
    el.addEventListener('cancel', cancel);
    return () => {
      el.removeEventListener('cancel', cancel);
      el.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);

  const onBackdrop = (e: MouseEvent) => {
    if (e.target === ref.current) onClose();
  };

  return (
    <dialog ref={ref} class={`dialog dialog-${variant}`} aria-label={title} onClick={onBackdrop}>
      <div class="dialog-box">
        <header class="dialog-head">
          <h2>{title}</h2>
          {aside}
          <button type="button" class="icon-button" aria-label="Close" title="Close (Esc)" onClick={onClose}>
            ×
          </button>
        </header>
        <div class="dialog-body">{children}</div>
        {footer ? <footer class="dialog-foot">{footer}</footer> : null}
      </div>
    </dialog>
  );
}
