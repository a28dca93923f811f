// "Skip to content": the first thing Tab reaches, shown only when focused.
import { useState, type CSSProperties } from 'react';

const hidden: CSSProperties = {
  position: 'absolute',
  width: 1,
  height: 1,
  margin: -1,
  padding: 0,
  overflow: 'hidden',
  clip: 'rect(0 0 0 0)',
  whiteSpace: 'nowrap',
  border: 0,
};

const shown: CSSProperties = {
  position: 'fixed',
  top: 8,
  left: 8,
  zIndex: 1000,
  padding: '8px 16px',
  background: 'var(--mantine-color-body)',
  color: 'var(--mantine-color-anchor)',
  border: '2px solid var(--mantine-primary-color-filled)',
  borderRadius: 4,
};

export function SkipLink({ target }: { target: string }) {
  const [focused, setFocused] = useState(false);
  return (
    <a
      href={`#${target}`}
      style={focused ? shown : hidden}
      onFocus={() => setFocused(true)}
      onBlur={() => setFocused(false)}
      onClick={(e) => {
        const el = document.getElementById(target);
        if (!el) return;
        e.preventDefault(); // keep the address bar's route as it is
        el.focus();
      }}
    >
      Skip to content
    </a>
  );
}
