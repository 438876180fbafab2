// A node's serial console in the page, through the control plane (which holds the
// chassis' credentials; the page only has its session): the history, then what the tray
// writes, as text; a line typed here goes to the tray's UART.

/** Characters of console text kept in the page. */
const KEEP = 64 * 1024;
/** Terminal control sequences (colours, cursor moves), which a text view leaves out. */
// eslint-disable-next-line no-control-regex
const CONTROL = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r/g;

export interface Console {
  close(): void;
}

export function openConsole(node: string, out: HTMLPreElement, input: HTMLInputElement, onState: (s: string) => void): Console {
  const url = `wss://${location.host}/v1/nodes/${encodeURIComponent(node)}/console`;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const decoder = new TextDecoder();
  let text = '';
  ws.addEventListener('open', () => {
    onState('connected');
    input.disabled = false;
    input.focus();
  });
  ws.addEventListener('message', (ev) => {
    const chunk = typeof ev.data === 'string' ? ev.data : decoder.decode(ev.data as ArrayBuffer, { stream: true });
    text = (text + chunk.replace(CONTROL, '')).slice(-KEEP);
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.textContent = text;
    if (atBottom) out.scrollTop = out.scrollHeight;
  });
  ws.addEventListener('close', () => {
    onState('closed');
    input.disabled = true;
  });
  const send = (ev: KeyboardEvent) => {
    if (ev.key !== 'Enter' || ws.readyState !== WebSocket.OPEN) return;
    ws.send(new TextEncoder().encode(`${input.value}\n`));
    input.value = '';
  };
  input.addEventListener('keydown', send);
  return {
    close: () => {
      input.removeEventListener('keydown', send);
      ws.close();
    },
  };
}
