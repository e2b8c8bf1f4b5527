"""Load a page in headless chromium and report what a reader would see go wrong.

A minimal Chrome DevTools Protocol client over a WebSocket written with the standard library
(no browser download, no extra package): console errors, uncaught exceptions, failed loads,
images that did not decode, links whose target is missing, and a screenshot.
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run',
                  '--disable-default-apps', '--hide-scrollbars', '--mute-audio')


def find_chromium():
    """Path of a chromium binary on PATH, or None."""
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    return None


class _WebSocket:
    """Just enough RFC 6455 for CDP: masked text frames out, unmasked frames in."""

    def __init__(self, url, timeout=60.0):
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f'GET {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n'
                   'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                   f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n')
        self.sock.sendall(request.encode())
        response = b''
        while b'\r\n\r\n' not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('websocket handshake: connection closed')
            response += chunk
        if b' 101 ' not in response.split(b'\r\n', 1)[0]:
            raise ConnectionError(f'websocket handshake refused: {response[:200]!r}')
        self.buffer = response.split(b'\r\n\r\n', 1)[1]

    def send(self, text):
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack('>H', n)
        else:
            header.append(0x80 | 127)
            header += struct.pack('>Q', n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError('websocket closed')
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self):
        message = b''
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack('>H', self._read(2))[0]
            elif n == 127:
                n = struct.unpack('>Q', self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError('websocket closed by the browser')
            if opcode in (0x9, 0xA):  # ping/pong: ignore
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self):
        self.sock.close()


@dataclass
class PageCheck:
    """What loading one page showed."""

    url: str
    console_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)
    broken_images: list = field(default_factory=list)
    n_images: int = 0
    links: list = field(default_factory=list)  # absolute hrefs
    missing_links: list = field(default_factory=list)
    screenshot: bytes = b''
    text: str = ''


class Chromium:
    """A headless chromium driven over the DevTools protocol (use as a context manager)."""

    def __init__(self, binary=None, *, width=1200, height=1600):
        self.binary = binary or find_chromium()
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix='lesionqsm-chromium-')
        self.process = None
        self.ws = None
        self._id = 0
        self.events = []

    def __enter__(self):
        self.process = subprocess.Popen(
            [self.binary, *CHROMIUM_FLAGS, f'--user-data-dir={self.profile}',
             '--remote-debugging-port=0', f'--window-size={self.width},{self.height}',
             'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / 'DevToolsActivePort'
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError('chromium did not open its DevTools port')
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=30) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t.get('type') == 'page')
        self.ws = _WebSocket(page['webSocketDebuggerUrl'])
        for domain in ('Page', 'Runtime', 'Log', 'Network'):
            self.call(f'{domain}.enable')
        self.call('Emulation.setDeviceMetricsOverride', width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc):
        if self.ws is not None:
            self.ws.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method, **params):
        """Send a command and return its result; events met meanwhile are kept."""
        self._id += 1
        ident = self._id
        self.ws.send(json.dumps({'id': ident, 'method': method, 'params': params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get('id') == ident:
                if 'error' in message:
                    raise RuntimeError(f'{method}: {message["error"]}')
                return message.get('result', {})
            if 'method' in message:
                self.events.append(message)

    def wait_for(self, event, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e['method'] == event for e in self.events):
                return
            message = json.loads(self.ws.receive())
            if 'method' in message:
                self.events.append(message)
        raise TimeoutError(f'no {event} within {timeout} s')

    def evaluate(self, expression):
        result = self.call('Runtime.evaluate', expression=expression, returnByValue=True,
                           awaitPromise=True)
        return result['result'].get('value')

    def check(self, path):
        """Load a local HTML file and gather what went wrong (see :class:`PageCheck`)."""
        self.events = []
        url = Path(path).absolute().as_uri()
        self.call('Page.navigate', url=url)
        self.wait_for('Page.loadEventFired')
        # every image decoded (SVGs load asynchronously: wait for each)
        self.evaluate('Promise.all(Array.from(document.images).map(i => i.decode()'
                      '.catch(() => null)))')
        check = PageCheck(url=url)
        images = self.evaluate('Array.from(document.images).map(i => '
                               '[i.currentSrc || i.src, i.complete && i.naturalWidth > 0])')
        check.n_images = len(images)
        check.broken_images = [src for src, ok in images if not ok]
        check.links = self.evaluate('Array.from(document.querySelectorAll("a[href]"))'
                                    '.map(a => a.href)')
        for href in check.links:
            parsed = urlparse(href)
            if parsed.scheme == 'file':
                target = Path(unquote(parsed.path))
                if not target.exists():
                    check.missing_links.append(href)
                elif parsed.fragment and target == Path(unquote(urlparse(url).path)):
                    found = self.evaluate(
                        f'document.getElementById({json.dumps(unquote(parsed.fragment))}) '
                        '!== null')
                    if not found:
                        check.missing_links.append(href)
            elif parsed.scheme not in ('http', 'https', 'mailto'):
                check.missing_links.append(href)
        check.text = self.evaluate('document.body.innerText') or ''
        shot = self.call('Page.captureScreenshot', format='png', captureBeyondViewport=False)
        check.screenshot = base64.b64decode(shot['data'])
        for event in self.events:
            method, params = event['method'], event.get('params', {})
            if method == 'Runtime.consoleAPICalled' and params.get('type') in ('error',
                                                                               'assert'):
                check.console_errors.append(json.dumps(params.get('args'))[:300])
            elif method == 'Runtime.exceptionThrown':
                check.console_errors.append(json.dumps(params.get('exceptionDetails'))[:300])
            elif method == 'Log.entryAdded' and params['entry'].get('level') == 'error':
                check.console_errors.append(params['entry'].get('text', '')[:300])
            elif method == 'Network.loadingFailed':
                check.failed_requests.append(params.get('errorText', ''))
        return check


def is_blank(png_bytes, *, min_std=8.0, min_colours=16):
    """True when a screenshot is (nearly) one flat colour."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png_bytes)) as image:
        pixels = np.asarray(image.convert('L'), dtype=float)
    return pixels.std() < min_std or np.unique(pixels).size < min_colours
