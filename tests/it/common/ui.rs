//! A browser's side of the web UI without a browser: a signed-in session over real HTTP
//! (cookie and anti-forgery token), for HTML-level tests.

use super::TestServer;

/// A signed-in web UI session.
pub struct UiSession {
    client: reqwest::Client,
    base: String,
    /// The session cookie's value.
    pub cookie: String,
    /// The anti-forgery token forms carry.
    pub csrf: String,
}

/// A page as fetched: status, `Location` (redirects are not followed), body.
pub struct Fetched {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (lossy for binary downloads; see `bytes`).
    pub body: String,
    pub bytes: Vec<u8>,
}

/// A client that follows no redirects (tests look at them).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn fetched(response: reqwest::Response) -> Fetched {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap().to_vec();
    Fetched {
        status,
        location,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// Posts the sign-in form with `token`.
pub async fn post_sign_in(server: &TestServer, token: &str, next: &str) -> Fetched {
    let response = no_redirects()
        .post(server.url("/ui/sign-in"))
        .form(&[("token", token), ("next", next)])
        .send()
        .await
        .unwrap();
    fetched(response).await
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl UiSession {
    /// Signs in with `token` and reads the anti-forgery token from the groups page (empty when
    /// the token cannot read any project).
    pub async fn sign_in(server: &TestServer, token: &str) -> UiSession {
        let answer = post_sign_in(server, token, "/ui/").await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        let set_cookie = answer.headers["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("faultline_session=")
            .expect("the session cookie")
            .to_owned();
        let mut session = UiSession {
            client: no_redirects(),
            base: server.url(""),
            cookie,
            csrf: String::new(),
        };
        // The header's sign-out form carries it on every page the token may see.
        let groups = session.get("/ui/").await;
        session.csrf = csrf_of(&groups.body).unwrap_or_default();
        session
    }

    /// GETs a UI path with the session cookie.
    pub async fn get(&self, path: &str) -> Fetched {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("faultline_session={}", self.cookie))
            .send()
            .await
            .unwrap();
        fetched(response).await
    }

    /// POSTs files as `multipart/form-data` (as the upload form does) with the session cookie.
    pub async fn post_files(&self, path: &str, files: &[(&str, Vec<u8>)]) -> Fetched {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("faultline_session={}", self.cookie))
            .multipart(form)
            .send()
            .await
            .unwrap();
        fetched(response).await
    }

    /// POSTs a form with the session cookie (the caller adds `csrf` when it should).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Fetched {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("faultline_session={}", self.cookie))
            .form(form)
            .send()
            .await
            .unwrap();
        fetched(response).await
    }
}
