//! GitHub Issues (REST API, `2022-11-28`): an issue per group, labelled, closed and reopened
//! with it, assigned by login.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::template;
use super::{answer, OnRegression, Ticket, Tracker, TrackerError};
use crate::outbound::AlertMessage;

/// A GitHub channel's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// The API's base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[serde(default = "default_api")]
    pub api_url: String,
    /// `owner/name`.
    pub repo: String,
    /// A token that may write the repository's issues.
    pub token: String,
    /// The title's template (see `template.rs`).
    #[serde(default = "default_title")]
    pub title: String,
    /// The body's template.
    #[serde(default = "default_body")]
    pub body: String,
    /// Labels besides `faultline` and `faultline-group-{id}`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// What a regression does to a closed issue.
    #[serde(default)]
    pub on_regression: OnRegression,
    /// The secret of the repository's webhook (`X-Hub-Signature-256`); needed for sync back.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

fn default_api() -> String {
    "https://api.github.com".into()
}
fn default_title() -> String {
    "{fault_class} in {signature}".into()
}
fn default_body() -> String {
    "faultline found a new crash group: **{fault_class}** in `{signature}`.\n\n{events} crashes, {users} users, first in release {first_release}.\n\nTop frames:\n```\n{top_frames}\n```\n\nSuspect commits:\n{suspect_commits}\n\n{url}".into()
}

impl GithubSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        let parts: Vec<&str> = self.repo.split('/').collect();
        let name_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.len() != 2 || !parts.iter().all(|p| name_ok(p)) {
            return Err("repo must be owner/name".into());
        }
        if self.token.trim().is_empty() || self.token.len() > 2048 {
            return Err("token must be 1 to 2048 bytes".into());
        }
        template::check(&self.title, "title")?;
        template::check(&self.body, "body")
    }
}

/// A repository's issues.
pub struct Github<'a> {
    settings: &'a GithubSettings,
    http: &'a reqwest::Client,
}

impl<'a> Github<'a> {
    /// The client for `settings`.
    pub fn new(settings: &'a GithubSettings, http: &'a reqwest::Client) -> Github<'a> {
        Github { settings, http }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!(
                    "{}/repos/{}{path}",
                    self.settings.api_url.trim_end_matches('/'),
                    self.settings.repo
                ),
            )
            .bearer_auth(&self.settings.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    fn ticket(issue: &Value) -> Option<Ticket> {
        Some(Ticket {
            key: issue["number"].as_i64()?.to_string(),
            url: issue["html_url"].as_str().unwrap_or_default().to_owned(),
            done: issue["state"] == "closed",
            assignee: issue["assignee"]["login"].as_str().map(str::to_owned),
        })
    }
}

#[async_trait::async_trait]
impl Tracker for Github<'_> {
    async fn find(&self, label: &str) -> Result<Option<Ticket>, TrackerError> {
        let found = answer(
            "looking for the group's issue",
            self.request(reqwest::Method::GET, "/issues")
                .query(&[("labels", label), ("state", "all"), ("per_page", "1")])
                .send()
                .await,
        )
        .await?;
        Ok(found
            .as_array()
            .and_then(|issues| issues.first())
            .and_then(Github::ticket))
    }

    async fn create(
        &self,
        label: &str,
        message: &AlertMessage,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Ticket, TrackerError> {
        let s = self.settings;
        let title: String = template::render(&s.title, message, annotations)
            .chars()
            .filter(|c| !c.is_control())
            .take(250)
            .collect();
        let mut labels = vec!["faultline".to_owned(), label.to_owned()];
        labels.extend(s.labels.iter().cloned());
        let created = answer(
            "creating the issue",
            self.request(reqwest::Method::POST, "/issues")
                .json(&json!({
                    "title": title,
                    "body": template::render(&s.body, message, annotations),
                    "labels": labels,
                }))
                .send()
                .await,
        )
        .await?;
        Github::ticket(&created).ok_or_else(|| TrackerError {
            status: Some(201),
            message: format!("GitHub created an issue but named no number: {created}"),
            retryable: false,
            retry_after: None,
        })
    }

    async fn set_done(&self, key: &str, done: bool) -> Result<(), TrackerError> {
        let body = if done {
            json!({"state": "closed", "state_reason": "completed"})
        } else {
            json!({"state": "open", "state_reason": "reopened"})
        };
        answer(
            "closing or reopening the issue",
            self.request(reqwest::Method::PATCH, &format!("/issues/{key}"))
                .json(&body)
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn assign(&self, key: &str, who: Option<&str>) -> Result<(), TrackerError> {
        answer(
            "assigning the issue",
            self.request(reqwest::Method::PATCH, &format!("/issues/{key}"))
                .json(&json!({"assignees": who.into_iter().collect::<Vec<_>>()}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn comment(&self, key: &str, text: &str) -> Result<(), TrackerError> {
        answer(
            "commenting on the issue",
            self.request(reqwest::Method::POST, &format!("/issues/{key}/comments"))
                .json(&json!({"body": text}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn check(&self) -> Result<String, TrackerError> {
        let repo = answer(
            "checking the repository",
            self.request(reqwest::Method::GET, "").send().await,
        )
        .await?;
        Ok(format!(
            "repository {} (issues {})",
            repo["full_name"].as_str().unwrap_or("?"),
            if repo["has_issues"] == false {
                "off"
            } else {
                "on"
            }
        ))
    }

    fn annotation_names(&self) -> Vec<String> {
        let mut names = template::annotation_names(&self.settings.title);
        names.extend(template::annotation_names(&self.settings.body));
        names.sort();
        names.dedup();
        names
    }

    fn on_regression(&self) -> OnRegression {
        self.settings.on_regression
    }
}
