// The last line of defence: a render error anywhere below shows what went
// wrong and a way out, instead of a blank page.
import { Component, type ErrorInfo, type ReactNode } from 'react';

interface State {
  error: Error | null;
}

export class ErrorBoundary extends Component<{ children: ReactNode }, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  componentDidCatch(error: unknown, info: ErrorInfo) {
    console.error('portal error', error, info.componentStack);
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    // Plain elements: the theme itself may be what failed.
    return (
      <main role="alert" style={{ maxWidth: 560, margin: '15vh auto', padding: 16, fontFamily: 'system-ui, sans-serif' }}>
        <h1 style={{ fontSize: '1.4rem' }}>Something went wrong</h1>
        <p>The page hit an error it could not recover from. Reloading usually fixes it.</p>
        <pre style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere', fontSize: '0.85rem' }}>{error.message || error.name}</pre>
        <button type="button" onClick={() => window.location.reload()} style={{ fontSize: '1rem', padding: '6px 16px' }}>
          Reload
        </button>
      </main>
    );
  }
}
