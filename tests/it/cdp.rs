//! A minimal Chrome DevTools Protocol client for the browser tests (issue 35): headless
//! Chromium started once with `--remote-debugging-pipe`, messages as NUL-terminated JSON
//! on its fds 3 and 4. No port, no websocket, no crate: the pipe closes with the test
//! process, and Chromium ends with it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one protocol call or page load may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Headless Chromium driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: Receiver<Value>,
    next_id: u64,
    /// Events received while waiting for answers, in order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// One tab, attached with a flat session.
pub struct Page {
    pub session: String,
    /// The page's URL: the one request it may make.
    pub url: String,
}

impl Browser {
    /// Starts Chromium; `None` when it is not installed (`.ci/run` installs it).
    pub fn start() -> Option<Browser> {
        let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists())?;
        let profile = tempfile::tempdir().unwrap();
        // The pipe is fds 3 (to the browser) and 4 (from it): the shell moves our stdin and
        // stdout there, as std cannot pass other fds without unsafe code.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        let to_browser = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, from_browser) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop(); // the NUL
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Some(Browser { child, to_browser, from_browser, next_id: 0, events: Vec::new(), _profile: profile })
    }

    /// Calls `method` (in `session`, or on the browser) and returns its result; a protocol
    /// error fails the test.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).expect("writing to chromium");
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let value = self.receive(deadline, method);
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {}", value["error"]);
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(value) => value,
            Err(RecvTimeoutError::Timeout) => panic!("chromium: no answer to {waiting_for} in {CALL_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("chromium ended while waiting for {waiting_for}"),
        }
    }

    /// Opens `url` in a new tab of `width`×`height` and waits for its load event. Console,
    /// log and network events are recorded from before the navigation.
    pub fn open(&mut self, url: &str, (width, height): (u32, u32)) -> Page {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached =
            self.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }));
        let session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            self.call(Some(&session), domain, json!({}));
        }
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        self.call(Some(&session), "Page.navigate", json!({ "url": url }));
        self.wait_for_event(&session, "Page.loadEventFired");
        Page { session, url: url.to_owned() }
    }

    fn wait_for_event(&mut self, session: &str, method: &str) {
        let is_it = |e: &Value| e["method"] == method && e["sessionId"] == session;
        if self.events.iter().any(is_it) {
            return;
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let value = self.receive(deadline, method);
            let found = is_it(&value);
            self.events.push(value);
            if found {
                return;
            }
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value; a
    /// thrown exception fails the test.
    pub fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let answer = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(answer.get("exceptionDetails").is_none(), "{expression}: {}", answer["exceptionDetails"]);
        answer["result"]["value"].clone()
    }

    /// Moves the mouse to (x, y) of the viewport.
    pub fn hover(&mut self, page: &Page, x: f64, y: f64) {
        self.call(
            Some(&page.session),
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y, "button": "none" }),
        );
    }

    /// Clicks at (x, y) of the viewport with the left button.
    pub fn click(&mut self, page: &Page, x: f64, y: f64) {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(&page.session),
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// The viewport rectangle `[left, top, width, height]` of the first element matching
    /// `selector`, scrolled into view first.
    pub fn rect(&mut self, page: &Page, selector: &str) -> [f64; 4] {
        let selector = serde_json::to_string(selector).unwrap();
        let r = self.eval(
            page,
            &format!(
                "(() => {{ const e = document.querySelector({selector}); e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }})()"
            ),
        );
        serde_json::from_value(r).unwrap()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self.call(Some(&page.session), "Page.captureScreenshot", json!({ "format": "png" }));
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap()
    }

    /// What went wrong in the page so far: console errors, uncaught exceptions, error log
    /// entries (a CSP violation is one), and every request but the page itself.
    pub fn problems(&self, page: &Page) -> Vec<String> {
        self.problems_besides(page, &[])
    }

    /// `problems`, where requests to `allowed` URLs are expected (the live view's polls).
    pub fn problems_besides(&self, page: &Page, allowed: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for e in self.events.iter().filter(|e| e["sessionId"] == page.session.as_str()) {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or("") {
                "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
                    found.push(format!("console.{}: {}", p["type"], p["args"]))
                }
                "Runtime.exceptionThrown" => found.push(format!("exception: {}", p["exceptionDetails"])),
                "Log.entryAdded" if p["entry"]["level"] == "error" => {
                    found.push(format!("log: {}", p["entry"]["text"]))
                }
                "Network.requestWillBeSent"
                    if p["request"]["url"] != page.url.as_str()
                        && !allowed.iter().any(|a| p["request"]["url"] == *a) =>
                {
                    found.push(format!("request: {}", p["request"]["url"]))
                }
                _ => {}
            }
        }
        found
    }

    /// Closes the tab.
    pub fn close(&mut self, page: Page) {
        self.call(Some(&page.session), "Page.close", json!({}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
