//! Jira's REST API, v2 (Data Center: wiki-text descriptions, users by name) and v3 (Cloud:
//! descriptions in Atlassian Document Format, users by account ID), with an email and API token
//! (HTTP basic). Transitions are chosen by status name when configured, else by status
//! category (`done`, or `new` to reopen), since workflows name their statuses freely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::template;
use super::{answer, OnRegression, Ticket, Tracker, TrackerError};
use crate::outbound::AlertMessage;

/// A Jira channel's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JiraSettings {
    /// `https://yourteam.atlassian.net` (or a Data Center base URL).
    pub base_url: String,
    /// The account's email (Cloud) or user name (Data Center).
    pub email: String,
    /// Its API token (or password / personal access token on Data Center).
    pub api_token: String,
    /// 3 (Cloud, the default) or 2 (Data Center).
    #[serde(default = "default_version")]
    pub api_version: u8,
    /// The project's key (`GAME`).
    pub project_key: String,
    /// The issue type's name.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// The summary's template (see `template.rs`).
    #[serde(default = "default_summary")]
    pub summary: String,
    /// The description's template.
    #[serde(default = "default_description")]
    pub description: String,
    /// Labels besides `faultline` and `faultline-group-{id}`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Custom fields by ID (`customfield_10010`); strings inside are templates and may use
    /// `$annotation`.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, Value>,
    /// The status a resolved group's ticket moves to (default: the first done-category one).
    #[serde(default)]
    pub done_status: Option<String>,
    /// The status a reopened group's ticket moves to (default: the first to-do one).
    #[serde(default)]
    pub reopen_status: Option<String>,
    /// What a regression does to a done ticket.
    #[serde(default)]
    pub on_regression: OnRegression,
    /// The secret Jira signs its webhooks with (`X-Hub-Signature`); needed for sync back.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

fn default_version() -> u8 {
    3
}
fn default_issue_type() -> String {
    "Bug".into()
}
fn default_summary() -> String {
    "{fault_class} in {signature}".into()
}
fn default_description() -> String {
    "faultline found a new crash group: {fault_class} in {signature}.\n\n{events} crashes, {users} users, first in release {first_release}.\n\nTop frames:\n{top_frames}\n\nSuspect commits:\n{suspect_commits}\n\n{url}".into()
}

impl JiraSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.api_version, 2 | 3) {
            return Err("api_version must be 2 (Data Center) or 3 (Cloud)".into());
        }
        for (name, value) in [
            ("email", &self.email),
            ("api_token", &self.api_token),
            ("project_key", &self.project_key),
            ("issue_type", &self.issue_type),
        ] {
            if value.trim().is_empty() || value.len() > 2048 {
                return Err(format!("{name} must be 1 to 2048 bytes"));
            }
        }
        template::check(&self.summary, "summary")?;
        template::check(&self.description, "description")?;
        for (field, value) in &self.custom_fields {
            for text in template::strings(value) {
                template::check(text, field)?;
            }
        }
        Ok(())
    }
}

/// A Jira site, as one channel's account sees it.
pub struct Jira<'a> {
    settings: &'a JiraSettings,
    http: &'a reqwest::Client,
}

impl<'a> Jira<'a> {
    /// The client for `settings`.
    pub fn new(settings: &'a JiraSettings, http: &'a reqwest::Client) -> Jira<'a> {
        Jira { settings, http }
    }

    fn api(&self, path: &str) -> String {
        format!(
            "{}/rest/api/{}/{path}",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.api_version
        )
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api(path))
            .basic_auth(&self.settings.email, Some(&self.settings.api_token))
            .header("accept", "application/json")
    }

    /// Text as a v2 string or a v3 document.
    fn text(&self, text: &str) -> Value {
        if self.settings.api_version == 2 {
            return json!(text);
        }
        let paragraphs: Vec<Value> = text
            .split("\n\n")
            .filter(|p| !p.trim().is_empty())
            .map(|paragraph| {
                let mut content = Vec::new();
                for (i, line) in paragraph.lines().enumerate() {
                    if i > 0 {
                        content.push(json!({"type": "hardBreak"}));
                    }
                    if !line.is_empty() {
                        content.push(json!({"type": "text", "text": line}));
                    }
                }
                json!({"type": "paragraph", "content": content})
            })
            .collect();
        json!({"type": "doc", "version": 1, "content": paragraphs})
    }

    fn ticket(&self, issue: &Value) -> Option<Ticket> {
        let key = issue["key"].as_str()?.to_owned();
        let fields = &issue["fields"];
        Some(Ticket {
            url: format!(
                "{}/browse/{key}",
                self.settings.base_url.trim_end_matches('/')
            ),
            done: fields["status"]["statusCategory"]["key"] == "done",
            assignee: fields["assignee"]["name"]
                .as_str()
                .or(fields["assignee"]["displayName"].as_str())
                .map(str::to_owned),
            key,
        })
    }
}

#[async_trait::async_trait]
impl Tracker for Jira<'_> {
    async fn find(&self, label: &str) -> Result<Option<Ticket>, TrackerError> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{label}\" ORDER BY created DESC",
            self.settings.project_key.replace('"', "")
        );
        // Cloud retired v3's /search for /search/jql.
        let path = if self.settings.api_version == 3 {
            "search/jql"
        } else {
            "search"
        };
        let found = answer(
            "looking for the group's issue",
            self.request(reqwest::Method::GET, path)
                .query(&[
                    ("jql", jql.as_str()),
                    ("fields", "status,assignee"),
                    ("maxResults", "1"),
                ])
                .send()
                .await,
        )
        .await?;
        Ok(found["issues"]
            .as_array()
            .and_then(|issues| issues.first())
            .and_then(|issue| self.ticket(issue)))
    }

    async fn create(
        &self,
        label: &str,
        message: &AlertMessage,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Ticket, TrackerError> {
        let s = self.settings;
        let summary: String = template::render(&s.summary, message, annotations)
            .chars()
            .filter(|c| !c.is_control())
            .take(250)
            .collect();
        let description = template::render(&s.description, message, annotations);
        let mut labels = vec!["faultline".to_owned(), label.to_owned()];
        labels.extend(s.labels.iter().cloned());
        let mut fields = json!({
            "project": {"key": s.project_key},
            "issuetype": {"name": s.issue_type},
            "summary": summary,
            "description": self.text(&description),
            "labels": labels,
        });
        for (field, value) in &s.custom_fields {
            fields[field] = template::render_json(value, message, annotations);
        }
        let created = answer(
            "creating the issue",
            self.request(reqwest::Method::POST, "issue")
                .json(&json!({ "fields": fields }))
                .send()
                .await,
        )
        .await?;
        let key = created["key"].as_str().ok_or_else(|| TrackerError {
            status: Some(201),
            message: format!("Jira created an issue but named no key: {created}"),
            retryable: false,
            retry_after: None,
        })?;
        Ok(Ticket {
            key: key.to_owned(),
            url: format!("{}/browse/{key}", s.base_url.trim_end_matches('/')),
            done: false,
            assignee: None,
        })
    }

    async fn set_done(&self, key: &str, done: bool) -> Result<(), TrackerError> {
        let path = format!("issue/{key}/transitions");
        let offered = answer(
            "listing the issue's transitions",
            self.request(reqwest::Method::GET, &path).send().await,
        )
        .await?;
        let transitions = offered["transitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let wanted_name = if done {
            &self.settings.done_status
        } else {
            &self.settings.reopen_status
        };
        let category = if done { "done" } else { "new" };
        let chosen = transitions.iter().find(|t| match wanted_name {
            Some(name) => t["to"]["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name)),
            None => t["to"]["statusCategory"]["key"] == category,
        });
        let Some(id) = chosen.and_then(|t| {
            t["id"]
                .as_str()
                .map(str::to_owned)
                .or(t["id"].as_i64().map(|i| i.to_string()))
        }) else {
            let names: Vec<&str> = transitions
                .iter()
                .filter_map(|t| t["to"]["name"].as_str())
                .collect();
            return Err(TrackerError {
                status: None,
                message: format!(
                    "{key} has no transition to {} (offered: {}); set {} on the channel",
                    wanted_name.as_deref().unwrap_or(if done {
                        "a done status"
                    } else {
                        "a to-do status"
                    }),
                    names.join(", "),
                    if done { "done_status" } else { "reopen_status" }
                ),
                retryable: false,
                retry_after: None,
            });
        };
        answer(
            "moving the issue",
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"transition": {"id": id}}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn assign(&self, key: &str, who: Option<&str>) -> Result<(), TrackerError> {
        let body = match (self.settings.api_version, who) {
            (2, who) => json!({ "name": who }),
            (_, None) => json!({ "accountId": null }),
            (_, Some(who)) => {
                let users = answer(
                    "finding the assignee",
                    self.request(reqwest::Method::GET, "user/search")
                        .query(&[("query", who)])
                        .send()
                        .await,
                )
                .await?;
                let Some(id) = users
                    .as_array()
                    .and_then(|u| u.first())
                    .and_then(|u| u["accountId"].as_str())
                else {
                    return Err(TrackerError {
                        status: None,
                        message: format!("no Jira user matches {who:?}"),
                        retryable: false,
                        retry_after: None,
                    });
                };
                json!({ "accountId": id })
            }
        };
        answer(
            "assigning the issue",
            self.request(reqwest::Method::PUT, &format!("issue/{key}/assignee"))
                .json(&body)
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn comment(&self, key: &str, text: &str) -> Result<(), TrackerError> {
        answer(
            "commenting on the issue",
            self.request(reqwest::Method::POST, &format!("issue/{key}/comment"))
                .json(&json!({ "body": self.text(text) }))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn check(&self) -> Result<String, TrackerError> {
        let me = answer(
            "checking the account",
            self.request(reqwest::Method::GET, "myself").send().await,
        )
        .await?;
        let project = answer(
            "checking the project",
            self.request(
                reqwest::Method::GET,
                &format!("project/{}", self.settings.project_key),
            )
            .send()
            .await,
        )
        .await?;
        Ok(format!(
            "signed in as {}; project {} ({})",
            me["displayName"]
                .as_str()
                .or(me["name"].as_str())
                .unwrap_or("?"),
            project["key"].as_str().unwrap_or("?"),
            project["name"].as_str().unwrap_or("?")
        ))
    }

    fn annotation_names(&self) -> Vec<String> {
        let s = self.settings;
        let mut names = template::annotation_names(&s.summary);
        names.extend(template::annotation_names(&s.description));
        for value in s.custom_fields.values() {
            for text in template::strings(value) {
                names.extend(template::annotation_names(text));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn on_regression(&self) -> OnRegression {
        self.settings.on_regression
    }
}
