//! One request from a CLI command to a faultline server (`faultline release`, `faultline
//! evidence`): the token attached, the server's refusal said in its own words.

use anyhow::Context;

/// Sends `request` with `token`; the answer's body when it succeeded, else `None` after printing
/// what the server answered (its `error` and `detail`).
pub async fn call(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
    server: &str,
) -> anyhow::Result<Option<String>> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.with_context(|| {
        format!("cannot reach the faultline server at {server} (set --server or FAULTLINE_URL)")
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(Some(body));
    }
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    eprintln!(
        "error: the server said {status}: {}{}",
        answer["error"].as_str().unwrap_or("no reason given"),
        answer["detail"]
            .as_str()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    Ok(None)
}
