//! A TCP proxy a test can cut: clients connect to it as to a daemon, and the test points it at a
//! daemon, or cuts every connection and refuses new ones (a network gone, with the daemon up).

use std::{
    io,
    net::{Shutdown, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
};

#[derive(Default)]
struct State {
    /// Where connections go; `None`: cut off.
    target: Option<u16>,
    /// Both ends of every open connection, to shut them when cut.
    open: Vec<TcpStream>,
}

pub struct Proxy {
    /// `127.0.0.1:PORT`
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// A proxy on 127.0.0.1:0, cut off until [`Proxy::connect_to`].
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let addr = listener.local_addr().expect("its address").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                let Some(port) = state.target else {
                    // Cut off: accepted and closed at once.
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        state.open.push(clone);
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Proxy { addr, state }
    }

    /// Sends new connections to the daemon on `port`.
    pub fn connect_to(&self, port: u16) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).target = Some(port);
    }

    /// Closes every connection and refuses new ones until [`Proxy::connect_to`].
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.target = None;
        for stream in state.open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either end closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
