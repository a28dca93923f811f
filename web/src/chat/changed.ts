// 'aipress:changed': the window event the chat panel dispatches after the
// assistant changed something (a write tool's result, a confirmed
// proposal), so pages showing lists can refresh:
//
//   useEffect(() => onAssistantChange(() => void reload()), [reload]);

/** CHANGED is the event's name. */
export const CHANGED = 'aipress:changed';

/** ChangedDetail is the event's detail: the tool and its arguments. */
export interface ChangedDetail {
  tool: string;
  args: Record<string, unknown>;
}

/** announceChange dispatches the event on window. */
export function announceChange(detail: ChangedDetail): void {
  window.dispatchEvent(new CustomEvent<ChangedDetail>(CHANGED, { detail }));
}

/** onAssistantChange calls f for each change and returns the unsubscribe function. */
export function onAssistantChange(f: (d: ChangedDetail) => void): () => void {
  const h = (e: Event) => f((e as CustomEvent<ChangedDetail>).detail);
  window.addEventListener(CHANGED, h);
  return () => window.removeEventListener(CHANGED, h);
}
