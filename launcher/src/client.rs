//! The CLI's side of the API: finds the daemon through `app/state/api.json` and
//! `app/state/api-token`, calls methods (typed or raw) and reads the event stream.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use kojibox_home::Home;
use kojibox_home::endpoint::{self, Endpoint};
use kojibox_manifests::api::Method;
use kojibox_manifests::error::ErrorCode;
use kojibox_manifests::event::{Event, EventEnvelope};
use kojibox_manifests::{ApiError, Response};
use serde_json::Value;

/// A connection to a running daemon.
pub struct Client {
    endpoint: Endpoint,
    token: String,
    http: reqwest::blocking::Client,
}

/// What can go wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon runs for the home (or a dead one left its files behind).
    #[error("{detail}")]
    NoDaemon {
        /// Why, and how to start one.
        detail: String,
    },
    /// The daemon could not be reached, or the connection broke.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done ("The daemon did not answer").
        what: &'static str,
        /// Why.
        source: reqwest::Error,
    },
    /// The daemon answered something that is not the contract's.
    #[error("{what}: {detail}")]
    BadAnswer {
        /// What was expected.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The daemon answered with an error envelope.
    #[error("{}: {}", .0.code, .0.detail)]
    Api(ApiError),
    /// The home's endpoint files could not be read.
    #[error(transparent)]
    Home(#[from] kojibox_home::Error),
}

impl ClientError {
    /// Whether the daemon said the named object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api(e) if e.code == ErrorCode::NotFound)
    }
}

impl Client {
    /// Connects to the daemon of `home`, or says clearly that none runs.
    pub fn connect(home: &Home) -> Result<Client, ClientError> {
        let no_daemon = |why: &str| ClientError::NoDaemon {
            detail: format!(
                "no kojibox daemon runs for {} ({why}): start one with `kojibox up` or `kojibox serve`",
                home.root().display()
            ),
        };
        let endpoint = endpoint::read(home)?.ok_or_else(|| no_daemon("no app/state/api.json"))?;
        // A daemon killed without cleanup leaves api.json behind, and another program may have
        // its port since: never send the token (or a secret) anywhere but to a live daemon.
        if !kojibox_proc::is_alive(endpoint.pid) {
            return Err(no_daemon(&format!(
                "app/state/api.json names pid {}, which has stopped",
                endpoint.pid
            )));
        }
        let token =
            endpoint::read_token(home).ok_or_else(|| no_daemon("no app/state/api-token"))?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(None)
            .build()
            .map_err(|source| ClientError::Transport {
                what: "Could not start the HTTP client",
                source,
            })?;
        let client = Client {
            endpoint,
            token,
            http,
        };
        // A daemon killed without cleanup leaves api.json behind: make sure someone answers.
        if std::net::TcpStream::connect_timeout(&client.address()?, Duration::from_secs(2)).is_err()
        {
            return Err(no_daemon(&format!(
                "nothing answers at {}; pid {} has stopped",
                client.endpoint.url, client.endpoint.pid
            )));
        }
        Ok(client)
    }

    fn address(&self) -> Result<std::net::SocketAddr, ClientError> {
        let host = self.endpoint.url.trim_start_matches("http://");
        host.parse().map_err(|_| {
            ClientError::Home(kojibox_home::Error::Corrupt {
                path: "app/state/api.json".into(),
                detail: format!("url `{}` is not http://ADDRESS:PORT", self.endpoint.url),
            })
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.endpoint.pid
    }

    /// The daemon's URL.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Calls `method` with raw params and returns the whole envelope.
    pub fn call_raw(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "method": method, "params": params });
        let response = self
            .http
            .post(format!("{}/rpc", self.endpoint.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .map_err(|source| ClientError::Transport {
                what: "The daemon did not answer",
                source,
            })?;
        response.json().map_err(|source| ClientError::Transport {
            what: "The daemon's answer is not JSON",
            source,
        })
    }

    /// A one-time browser login (`POST /session/login`): the dashboard URL with the code in its
    /// fragment, and when the code expires.
    pub fn login(&self) -> Result<(String, String), ClientError> {
        let response = self
            .http
            .post(format!("{}/session/login", self.endpoint.url))
            .bearer_auth(&self.token)
            .send()
            .map_err(|source| ClientError::Transport {
                what: "The daemon did not answer",
                source,
            })?;
        let status = response.status();
        let body: Value = response.json().map_err(|source| ClientError::Transport {
            what: "The daemon's answer is not JSON",
            source,
        })?;
        if !status.is_success() {
            return Err(ClientError::BadAnswer {
                what: "The daemon refused a login",
                detail: body.to_string(),
            });
        }
        match (body["url"].as_str(), body["expiresAt"].as_str()) {
            (Some(url), Some(expires)) => Ok((url.to_owned(), expires.to_owned())),
            _ => Err(ClientError::BadAnswer {
                what: "Unexpected answer",
                detail: body.to_string(),
            }),
        }
    }

    /// Calls a method with typed params and result.
    pub fn call<M: Method>(&self, params: &M::Params) -> Result<M::Output, ClientError> {
        let params = serde_json::to_value(params).map_err(|e| ClientError::BadAnswer {
            what: "Could not encode params",
            detail: e.to_string(),
        })?;
        let envelope = self.call_raw(M::NAME, params)?;
        let response: Response<M::Output> =
            serde_json::from_value(envelope).map_err(|e| ClientError::BadAnswer {
                what: "Unexpected answer",
                detail: format!("{}: {e}", M::NAME),
            })?;
        response.into_result().map_err(ClientError::Api)
    }

    /// Reads the event stream (replaying after `last_id` when given), calling `each` with every
    /// event until it answers false or the stream ends.
    pub fn events(
        &self,
        last_id: Option<u64>,
        mut each: impl FnMut(EventEnvelope) -> bool,
    ) -> Result<(), ClientError> {
        for envelope in self.subscribe(last_id)? {
            if !each(envelope?) {
                break;
            }
        }
        Ok(())
    }

    /// Opens the event stream (replaying after `last_id` when given): once this answers, the
    /// daemon sends every event from now on, to be read from the iterator.
    pub fn subscribe(&self, last_id: Option<u64>) -> Result<Events, ClientError> {
        let mut request = self
            .http
            .get(format!("{}/events", self.endpoint.url))
            .bearer_auth(&self.token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().map_err(|source| ClientError::Transport {
            what: "The daemon did not answer",
            source,
        })?;
        if !response.status().is_success() {
            return Err(ClientError::BadAnswer {
                what: "The event stream was refused",
                detail: response.status().to_string(),
            });
        }
        Ok(Events {
            lines: BufReader::new(response).lines(),
        })
    }
}

/// The events of an open stream, as they come.
pub struct Events {
    lines: std::io::Lines<BufReader<reqwest::blocking::Response>>,
}

impl Iterator for Events {
    type Item = Result<EventEnvelope, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (mut id, mut name, mut data) = (None::<u64>, String::new(), String::new());
        for line in self.lines.by_ref() {
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    return Some(Err(ClientError::BadAnswer {
                        what: "The event stream broke",
                        detail: e.to_string(),
                    }));
                }
            };
            if line.is_empty() {
                if let (Some(event_id), false) = (id, name.is_empty())
                    && let Ok(payload) = serde_json::from_str::<Value>(&data)
                    && let Ok(event) = Event::from_parts(&name, payload)
                {
                    return Some(Ok(EventEnvelope {
                        id: event_id,
                        event,
                    }));
                }
                (id, name, data) = (None, String::new(), String::new());
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        None
    }
}
