//! natter's API as a test client calls it, over an app in-process or a running server: the
//! steps almost every test takes (register, create a room, join, send) and the usual cast of
//! a room with an owner and a member.

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::http::{Resp, call};

/// Where requests go.
#[derive(Clone)]
enum Target {
    App(Router),
    Server {
        /// e.g. `http://127.0.0.1:8080`
        base: String,
        client: reqwest::Client,
    },
}

/// A client of natter's API under `/api/v1`.
#[derive(Clone)]
pub struct Api {
    target: Target,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub token: String,
}

/// A room with its owner and one other member.
#[derive(Debug, Clone)]
pub struct Party {
    pub room: Uuid,
    pub owner: User,
    pub member: User,
}

impl Api {
    /// Calls `app` in-process, without a socket.
    pub fn app(app: Router) -> Api {
        Api {
            target: Target::App(app),
        }
    }

    /// Calls a running server at `base` (scheme, host and port).
    pub fn server(base: &str) -> Api {
        Api {
            target: Target::Server {
                base: base.trim_end_matches('/').to_string(),
                client: reqwest::Client::new(),
            },
        }
    }

    /// One request to `/api/v1{path}`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        match &self.target {
            Target::App(app) => call(app, method, path, token, body, headers).await,
            Target::Server { base, client } => {
                let mut req = client
                    .request(method, format!("{base}/api/v1{path}"))
                    .body(body);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                let resp = req.send().await.expect("the server answers");
                let status = StatusCode::from_u16(resp.status().as_u16()).expect("a status");
                let mut header_map = HeaderMap::new();
                for (k, v) in resp.headers() {
                    header_map.append(k.clone(), v.clone());
                }
                let bytes = resp.bytes().await.expect("a body");
                let body = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes))
                    })
                };
                Resp {
                    status,
                    body,
                    headers: header_map,
                }
            }
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        let headers = [("content-type", "application/json")];
        self.request(
            Method::POST,
            path,
            token,
            body.to_string().into_bytes(),
            &headers,
        )
        .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        let headers = [("content-type", "application/json")];
        self.request(
            Method::PATCH,
            path,
            token,
            body.to_string().into_bytes(),
            &headers,
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, Vec::new(), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, Vec::new(), &[])
            .await
    }

    /// Registers `username` (password `password123`).
    pub async fn register(&self, username: &str) -> User {
        let body = self
            .post(
                "/auth/register",
                None,
                json!({ "username": username, "password": "password123" }),
            )
            .await
            .expect(201)
            .clone();
        User {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            username: username.to_string(),
            token: body["token"].as_str().unwrap().to_string(),
        }
    }

    /// Creates a room (`body` as `POST /rooms` takes it) and returns its id.
    pub async fn create_room(&self, token: &str, body: Value) -> Uuid {
        self.post("/rooms", Some(token), body).await.expect(201)["room"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Joins `room` and returns the position of the join.
    pub async fn join(&self, token: &str, room: Uuid) -> u64 {
        self.post(&format!("/rooms/{room}/join"), Some(token), json!({}))
            .await
            .expect(200)["position"]
            .as_u64()
            .unwrap()
    }

    /// Sends a text message and returns its position.
    pub async fn send(&self, token: &str, room: Uuid, text: &str) -> u64 {
        self.send_with(token, room, json!({ "content": text }))
            .await
            .1
    }

    /// Sends a message of `body` (content, and any reply, thread or mentions) and returns
    /// its id and position.
    pub async fn send_with(&self, token: &str, room: Uuid, body: Value) -> (Uuid, u64) {
        let sent = self
            .post(&format!("/rooms/{room}/messages"), Some(token), body)
            .await;
        let body = sent.expect(201);
        (
            body["message"]["id"].as_str().unwrap().parse().unwrap(),
            body["position"].as_u64().unwrap(),
        )
    }

    /// `{prefix}_owner` creates a public room that `{prefix}_member` joins.
    pub async fn party(&self, prefix: &str) -> Party {
        let owner = self.register(&format!("{prefix}_owner")).await;
        let member = self.register(&format!("{prefix}_member")).await;
        let room = self
            .create_room(&owner.token, json!({ "name": format!("{prefix} room") }))
            .await;
        self.join(&member.token, room).await;
        Party {
            room,
            owner,
            member,
        }
    }
}
