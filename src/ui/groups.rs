//! The groups page (the UI's home: what is crashing, filtered and sorted) and a group's page
//! (its history, breakdowns, latest crashes and triage actions).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::charts;
use super::page::{ago, query_string, render, segment, when, Chrome, UiError};
use super::session::Viewer;
use crate::app::App;
use crate::auth::{Project, Scope};
use crate::clock::now;
use crate::group::index::{Breakdown, Group, GroupPatch, GroupQuery, GroupSort, GroupState};
use crate::group::CrashClass;

/// Groups per page.
const PAGE_SIZE: i64 = 50;
/// Hours in a sparkline.
const SPARK_HOURS: usize = 48;
/// Hours in a group's chart (two weeks).
const CHART_HOURS: usize = 14 * 24;
/// A group first seen this recently is marked new.
const NEW_SECS: i64 = 24 * 3600;

/// The projects a viewer may read, in the registry's order.
pub async fn readable_projects(state: &App, viewer: &Viewer) -> Result<Vec<Project>, UiError> {
    Ok(state
        .registry
        .projects()
        .await?
        .into_iter()
        .filter(|p| viewer.may(Scope::TriageRead, p.id))
        .collect())
}

/// The project a page is about: the one named by `?project=` (404 when the viewer cannot read
/// it), else the first the viewer can read (403 when there is none).
pub fn chosen_project<'a>(
    projects: &'a [Project],
    slug: Option<&str>,
) -> Result<&'a Project, UiError> {
    let Some(first) = projects.first() else {
        return Err(UiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "this token cannot read any project's crashes",
        )
        .with_detail("sign in with a token that has the triage:read scope"));
    };
    match slug.map(str::trim).filter(|s| !s.is_empty()) {
        Some(slug) => projects
            .iter()
            .find(|p| p.slug == slug)
            .ok_or_else(|| UiError::not_found(format!("no project {slug:?}"))),
        None => Ok(first),
    }
}

/// The project select's options.
pub fn project_choices(projects: &[Project], chosen: i64) -> Vec<Choice> {
    projects
        .iter()
        .map(|p| Choice {
            value: p.slug.clone(),
            label: p.name.clone(),
            selected: p.id == chosen,
        })
        .collect()
}

/// A value in a select, and whether it is the chosen one.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices<'a>(
    options: impl IntoIterator<Item = (&'a str, impl Into<String>)>,
    chosen: &str,
) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            value: value.to_owned(),
            label: label.into(),
            selected: value == chosen,
        })
        .collect()
}

/// One group as a row of the groups table.
pub struct GroupRow {
    pub id: i64,
    pub signature: String,
    pub fault_class: String,
    pub events: i64,
    pub users: i64,
    pub first_seen: String,
    pub first_seen_ago: String,
    pub last_seen: String,
    pub last_seen_ago: String,
    pub first_release: String,
    pub last_release: String,
    pub state: String,
    pub assignee: String,
    pub is_new: bool,
    pub regressed: bool,
    /// Inline SVG (numbers only).
    pub sparkline: String,
    /// Crashes per 1,000 sessions of the filtered release (empty without one).
    pub rate: String,
}

/// A sortable column header: its label, link, and whether the table is sorted by it.
pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    projects: Vec<Choice>,
    states: Vec<Choice>,
    classes: Vec<Choice>,
    sorts: Vec<Choice>,
    assignee: String,
    release: String,
    q: String,
    sort_links: Vec<SortLink>,
    /// Sorting by rate in the filtered release (only with a release filter).
    rate_link: Option<SortLink>,
    rows: Vec<GroupRow>,
    next_page: Option<String>,
    filtered: bool,
}

/// The groups page's query string: filters, sort, page.
#[derive(Debug, Default, Deserialize)]
pub struct GroupsParams {
    project: Option<String>,
    state: Option<String>,
    assignee: Option<String>,
    release: Option<String>,
    fault_class: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The states a person may set, as form options (`in_progress` reads "in progress").
fn state_options() -> impl Iterator<Item = (&'static str, String)> {
    GroupState::SETTABLE
        .into_iter()
        .map(|s| (s.as_str(), s.as_str().replace('_', " ")))
}

/// How a muted group's mute ends, in words (empty when it is not muted or never ends).
fn mute_text(group: &Group) -> String {
    if group.state != GroupState::Muted {
        return String::new();
    }
    let mut ends = Vec::new();
    if let Some(until) = group.muted_until {
        ends.push(format!("until {}", when(until)));
    }
    if let Some(at) = group.mute_until_events {
        ends.push(format!(
            "for {} more crashes",
            (at - group.event_count).max(0)
        ));
    }
    if let Some(at) = group.mute_until_users {
        ends.push(format!("for {} more users", (at - group.user_count).max(0)));
    }
    ends.join(" or ")
}

const SORTS: [(&str, &str); 4] = [
    ("last_seen", "Last seen"),
    ("first_seen", "First seen"),
    ("events", "Events"),
    ("users", "Users"),
];

/// `GET /ui/?project=&state=&assignee=&release=&fault_class=&q=&sort=&cursor=`.
pub async fn list(
    State(state): State<App>,
    viewer: Viewer,
    params: Result<Query<GroupsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    let projects = readable_projects(&state, &viewer).await?;
    let project = chosen_project(&projects, params.project.as_deref())?;
    let sort_name = given(&params.sort).unwrap_or_else(|| "last_seen".to_owned());
    let query = groups_query(project.id, &params, &sort_name)?;
    let page = state.index.groups(&query).await?;
    let t = now();
    let start = charts::window_start(t, SPARK_HOURS);
    let ids: Vec<i64> = page.items.iter().map(|g| g.id).collect();
    let hourly = state.index.hourly_counts(&ids, start).await?;
    let mut rates = match &query.release {
        Some(release) => release_rates(&state, project.id, release, &ids).await?,
        None => HashMap::new(),
    };
    let rows = page
        .items
        .iter()
        .map(|g| GroupRow {
            rate: rates.remove(&g.id).unwrap_or_default(),
            ..group_row(
                g,
                hourly.get(&g.id).map_or(&[][..], Vec::as_slice),
                start,
                t,
            )
        })
        .collect();
    let state_filter = query.state.map(GroupState::as_str).unwrap_or("");
    let class_filter = query.fault_class.map_or("", CrashClass::as_str);
    let filters = |sort: &str, cursor: &str| {
        query_string(&[
            ("project", project.slug.as_str()),
            ("state", state_filter),
            ("assignee", query.assignee.as_deref().unwrap_or("")),
            ("release", query.release.as_deref().unwrap_or("")),
            ("fault_class", class_filter),
            ("q", query.signature_contains.as_deref().unwrap_or("")),
            ("sort", sort),
            ("cursor", cursor),
        ])
    };
    let class_options: Vec<(&str, &str)> = std::iter::once(("", "any class"))
        .chain(CrashClass::all().map(|c| (c.as_str(), c.as_str())))
        .collect();
    let page = GroupsPage {
        chrome: viewer.chrome(),
        projects: project_choices(&projects, project.id),
        states: choices(
            [("", "any state".to_owned())]
                .into_iter()
                .chain(state_options()),
            state_filter,
        ),
        classes: choices(class_options, class_filter),
        sorts: choices(SORTS, &sort_name),
        assignee: query.assignee.clone().unwrap_or_default(),
        release: query.release.clone().unwrap_or_default(),
        q: query.signature_contains.clone().unwrap_or_default(),
        filtered: query.state.is_some()
            || query.fault_class.is_some()
            || query.assignee.is_some()
            || query.release.is_some()
            || query.signature_contains.is_some(),
        sort_links: SORTS
            .iter()
            .map(|(value, label)| SortLink {
                label,
                href: format!("/ui/{}", filters(value, "")),
                active: *value == sort_name,
            })
            .collect(),
        rate_link: query.release.as_ref().map(|_| SortLink {
            label: "Per 1,000 sessions",
            href: format!("/ui/{}", filters("rate", "")),
            active: sort_name == "rate",
        }),
        next_page: page
            .next_cursor
            .as_deref()
            .map(|cursor| format!("/ui/{}", filters(&sort_name, cursor))),
        rows,
    };
    Ok(render(&page))
}

/// The index query the list's filters ask for (a bad sort or state is a 400 page).
fn groups_query(
    project_id: i64,
    params: &GroupsParams,
    sort_name: &str,
) -> Result<GroupQuery, UiError> {
    let sort = GroupSort::parse(sort_name).map_err(UiError::bad_request)?;
    let state = match given(&params.state) {
        Some(name) => Some(GroupState::settable(&name)?),
        None => None,
    };
    Ok(GroupQuery {
        project_id,
        state,
        product: None,
        release: given(&params.release),
        fault_class: match given(&params.fault_class) {
            Some(name) => Some(CrashClass::parse(&name)?),
            None => None,
        },
        since: None,
        until: None,
        annotation: None,
        assignee: given(&params.assignee),
        signature_contains: given(&params.q),
        sort,
        limit: PAGE_SIZE,
        cursor: given(&params.cursor),
    })
}

fn group_row(g: &Group, hourly: &[(i64, i64)], start: i64, t: i64) -> GroupRow {
    GroupRow {
        id: g.id,
        signature: g.signature.clone(),
        fault_class: g.fault_class.as_str().to_owned(),
        events: g.event_count,
        users: g.user_count,
        first_seen: when(g.first_seen),
        first_seen_ago: ago(g.first_seen, t),
        last_seen: when(g.last_seen),
        last_seen_ago: ago(g.last_seen, t),
        first_release: g.first_release.clone().unwrap_or_default(),
        last_release: g.last_release.clone().unwrap_or_default(),
        state: g.state.as_str().to_owned(),
        assignee: g.assignee.clone().unwrap_or_default(),
        is_new: t - g.first_seen < NEW_SECS,
        regressed: g.regressed,
        sparkline: charts::sparkline(&charts::per_hour(hourly, start, SPARK_HOURS)),
        rate: String::new(),
    }
}

/// Each listed group's crashes per 1,000 sessions of `release` (none when the release has no
/// sessions recorded).
async fn release_rates(
    state: &App,
    project_id: i64,
    release: &str,
    ids: &[i64],
) -> Result<HashMap<i64, String>, UiError> {
    let health = state
        .health
        .release_health(project_id, release, &Default::default())
        .await
        .map_err(UiError::of)?;
    if health.sessions == 0 {
        return Ok(HashMap::new());
    }
    let crashes = state.index.crashes_in_release(ids, release).await?;
    Ok(crashes
        .into_iter()
        .map(|(id, n)| {
            let rate = n as f64 * 1000.0 / health.sessions as f64;
            (id, format!("{rate:.3}"))
        })
        .collect())
}

/// A breakdown's row: value, count and share of the group's crashes.
pub struct Share {
    pub value: String,
    pub count: i64,
    pub percent: String,
}

/// A titled breakdown table.
pub struct BreakdownTable {
    pub title: String,
    pub rows: Vec<Share>,
}

fn shares(title: &str, rows: &[Breakdown], total: i64) -> BreakdownTable {
    BreakdownTable {
        title: title.to_owned(),
        rows: rows
            .iter()
            .take(20)
            .map(|b| Share {
                value: b.value.clone().unwrap_or_else(|| "(not given)".to_owned()),
                count: b.count,
                percent: format!("{:.1} %", 100.0 * b.count as f64 / total.max(1) as f64),
            })
            .collect(),
    }
}

/// One of a group's crashes, as a row.
pub struct CrashLine {
    pub id: String,
    pub href: String,
    pub received: String,
    pub received_ago: String,
    pub release: String,
    pub platform: String,
    pub kept: bool,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    group: GroupRow,
    project: String,
    resolved_in: String,
    evidence: Option<String>,
    chart: String,
    chart_hours: usize,
    breakdowns: Vec<BreakdownTable>,
    by_names: Vec<Choice>,
    crashes: Vec<CrashLine>,
    can_write: bool,
    states: Vec<Choice>,
    /// How the mute ends, in words.
    mute: String,
    /// The tickets trackers keep for it.
    tickets: Vec<TicketView>,
    /// Suspect commits and the commit that fixes it.
    code: super::group_code::SuspectsBlock,
    /// The group's state as the triage form sends it (the assign form keeps it).
    state_value: String,
    /// Its rate per release with sessions.
    rates: Vec<super::group_health::RateRow>,
    /// Correlations, timeline, history.
    why: super::group_why::WhyBlock,
    /// Deploys of its releases inside the chart's window.
    deploy_marks: Vec<super::group_why::DeployMark>,
    /// The chart's width in units (4 an hour).
    chart_width: usize,
}

/// A tracker's ticket for the group: its key, and a link when its address is a web address.
struct TicketView {
    key: String,
    url: Option<String>,
    state: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroupParams {
    by: Option<String>,
}

/// The group `id` if the viewer may act on it with `scope` (another project's reads as not
/// found); a merged group redirects to the group it went into.
async fn visible(
    state: &App,
    viewer: &Viewer,
    id: &str,
    scope: Scope,
) -> Result<Result<Group, Response>, UiError> {
    viewer.caller.require(scope)?;
    let id: i64 = id
        .parse()
        .map_err(|_| UiError::bad_request(format!("{id:?} is not a group number")))?;
    match state.index.group(id).await? {
        Some(group) if viewer.may(scope, group.project_id) => Ok(Ok(group)),
        Some(_) => Err(UiError::not_found(format!("no group {id}"))),
        None => match state.index.merged_into(id).await? {
            Some(target) => Ok(Err(
                Redirect::to(&format!("/ui/groups/{target}")).into_response()
            )),
            None => Err(UiError::not_found(format!("no group {id}"))),
        },
    }
}

/// `GET /ui/groups/{id}?by=<annotation>`.
pub async fn show(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    params: Result<Query<GroupParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(params) = params.map_err(|e| UiError::bad_request(e.body_text()))?;
    let group = match visible(&state, &viewer, &id, Scope::TriageRead).await? {
        Ok(group) => group,
        Err(redirect) => return Ok(redirect),
    };
    let detail = state
        .index
        .group_detail(group.id)
        .await?
        .ok_or_else(|| UiError::not_found(format!("no group {}", group.id)))?;
    let t = now();
    let start = charts::window_start(t, CHART_HOURS);
    let total = group.event_count;
    let mut breakdowns = vec![
        shares("Release", &detail.by_release, total),
        shares("Operating system", &detail.by_platform, total),
        shares("Product", &detail.by_product, total),
        shares("CPU", &detail.by_cpu, total),
    ];
    let names = state.index.annotation_names(group.id).await?;
    let by = given(&params.by);
    if let Some(name) = &by {
        let rows = state.index.annotation_breakdown(group.id, name, 20).await?;
        breakdowns.push(shares(name, &rows, total));
    }
    let by_names = std::iter::once(Choice {
        value: String::new(),
        label: "another annotation…".to_owned(),
        selected: by.is_none(),
    })
    .chain(names.iter().map(|n| Choice {
        value: n.clone(),
        label: n.clone(),
        selected: by.as_deref() == Some(n),
    }))
    .collect();
    let crashes = crash_lines(&state, group.id, t).await?;
    let releases: Vec<String> = detail
        .by_release
        .iter()
        .filter_map(|b| b.value.clone())
        .collect();
    let evidence = match detail.samples.first().and_then(|c| c.payload_key.clone()) {
        Some(key) => super::crash::latest_evidence(&state, &key).await,
        None => None,
    };
    let project = state
        .registry
        .project_by_id(group.project_id)
        .await?
        .map_or_else(|| group.project_id.to_string(), |p| p.name);
    let tickets = tickets_of(&state, group.id).await?;
    let page = GroupPage {
        code: super::group_code::suspects_block(&state, group.id, t).await,
        rates: super::group_health::rate_rows(&state, group.id).await,
        why: super::group_why::why_block(&state, group.id, t).await,
        deploy_marks: super::group_why::deploy_marks(&state, group.project_id, &releases, start, t)
            .await,
        chart_width: CHART_HOURS * 4,
        state_value: group.state.as_str().to_owned(),
        tickets,
        chrome: viewer.chrome(),
        project,
        resolved_in: group.resolved_in.clone().unwrap_or_default(),
        evidence,
        chart: charts::bars(&charts::per_hour(&detail.hourly, start, CHART_HOURS)),
        chart_hours: CHART_HOURS,
        breakdowns,
        by_names,
        crashes,
        can_write: viewer.may(Scope::TriageWrite, group.project_id),
        states: choices(state_options(), group.state.as_str()),
        mute: mute_text(&group),
        group: group_row(&group, &[], start, t),
    };
    Ok(render(&page))
}

/// The group's latest crashes, each linked to its page (at the fault frame when it kept its
/// payload: the browser scrolls it into view, no script needed).
async fn crash_lines(state: &App, group_id: i64, t: i64) -> Result<Vec<CrashLine>, UiError> {
    Ok(state
        .index
        .group_crashes(group_id, 20)
        .await?
        .into_iter()
        .map(|c| CrashLine {
            href: format!(
                "/ui/crashes/{}{}",
                segment(&c.attributes.id),
                if c.payload_key.is_some() {
                    "#fault"
                } else {
                    ""
                }
            ),
            received: when(c.attributes.received_at),
            received_ago: ago(c.attributes.received_at, t),
            release: c.attributes.release.clone().unwrap_or_default(),
            platform: c.attributes.platform.clone().unwrap_or_default(),
            kept: c.payload_key.is_some(),
            id: c.attributes.id,
        })
        .collect())
}

/// The tracker tickets that follow the group (links only when they are web addresses).
async fn tickets_of(state: &App, group_id: i64) -> Result<Vec<TicketView>, UiError> {
    Ok(state
        .alerts
        .desk()
        .links_of_group(group_id)
        .await
        .map_err(|e| UiError::from(crate::group::index::IndexError::Database(e)))?
        .into_iter()
        .map(|link| TicketView {
            url: (link.ticket_url.starts_with("https://")
                || link.ticket_url.starts_with("http://"))
            .then_some(link.ticket_url),
            key: link.ticket_key,
            state: link.synced_state,
        })
        .collect())
}

/// The triage form: state, the release it was fixed in, the assignee, when a mute ends.
#[derive(Deserialize)]
pub struct TriageForm {
    csrf: String,
    state: String,
    #[serde(default)]
    resolved_in: String,
    #[serde(default)]
    assignee: String,
    /// `YYYY-MM-DD` (a date input): the mute ends at that day's start, UTC.
    #[serde(default)]
    muted_until: String,
    /// The mute ends after this many more crashes.
    #[serde(default)]
    mute_for_events: String,
    #[serde(default)]
    mute_for_users: String,
}

/// The start of a `YYYY-MM-DD` day, UTC, Unix seconds.
fn day_start(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// The group a form changes: the form must carry this session's anti-forgery token, and the
/// viewer needs `triage:write` on the group's project.
async fn changing(
    state: &App,
    viewer: &Viewer,
    id: &str,
    csrf: &str,
) -> Result<Result<Group, Response>, UiError> {
    viewer.check_csrf(csrf)?;
    visible(state, viewer, id, Scope::TriageWrite).await
}

/// Longest assignee or release accepted from a form.
const MAX_FIELD: usize = 200;

/// `POST /ui/groups/{id}/triage`: applies the form and shows the group again.
pub async fn triage(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<TriageForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| UiError::bad_request(e.body_text()))?;
    let group = match changing(&state, &viewer, &id, &form.csrf).await? {
        Ok(group) => group,
        Err(redirect) => return Ok(redirect),
    };
    let text = |value: &str, name: &str| -> Result<Option<String>, UiError> {
        let value = value.trim();
        if value.len() > MAX_FIELD {
            return Err(UiError::bad_request(format!(
                "the {name} is longer than {MAX_FIELD} bytes"
            )));
        }
        Ok((!value.is_empty()).then(|| value.to_owned()))
    };
    let resolved_in = text(&form.resolved_in, "release")?;
    let new_state = GroupState::settable(&form.state)?;
    let muted = new_state == GroupState::Muted;
    let muted_until = match text(&form.muted_until, "date")? {
        Some(day) if muted => Some(day_start(&day).ok_or_else(|| {
            UiError::bad_request(format!("{day:?} is not a date: use YYYY-MM-DD"))
        })?),
        _ => None,
    };
    let mute_for_events = match text(&form.mute_for_events, "count")? {
        Some(n) if muted => Some(n.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            UiError::bad_request(format!("{n:?} is not a number of crashes (1 or more)"))
        })?),
        _ => None,
    };
    let mute_for_users = match text(&form.mute_for_users, "count")? {
        Some(n) if muted => Some(n.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            UiError::bad_request(format!("{n:?} is not a number of users (1 or more)"))
        })?),
        _ => None,
    };
    let patch = GroupPatch {
        mute_for_users: Some(mute_for_users),
        state: Some(new_state),
        assignee: Some(text(&form.assignee, "assignee")?),
        resolved_in: Some(if new_state == GroupState::Resolved {
            resolved_in
        } else {
            None
        }),
        muted_until: Some(muted_until),
        mute_for_events: Some(mute_for_events),
    };
    state.triage.change_group(group.id, &patch, None).await?;
    Ok(Redirect::to(&format!("/ui/groups/{}", group.id)).into_response())
}

/// The merge form: another group's number.
#[derive(Deserialize)]
pub struct MergeForm {
    csrf: String,
    other: String,
}

/// `POST /ui/groups/{id}/merge`: moves another group of the same project into this one.
pub async fn merge(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<MergeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| UiError::bad_request(e.body_text()))?;
    let group = match changing(&state, &viewer, &id, &form.csrf).await? {
        Ok(group) => group,
        Err(redirect) => return Ok(redirect),
    };
    let other = match visible(&state, &viewer, form.other.trim(), Scope::TriageWrite).await? {
        Ok(other) if other.project_id == group.project_id => other,
        Ok(_) => {
            return Err(UiError::bad_request(
                "groups of different projects cannot be merged",
            ))
        }
        Err(_) => {
            return Err(UiError::bad_request(format!(
                "group {} was already merged",
                form.other.trim()
            )))
        }
    };
    state.triage.merge(group.id, &[other.id]).await?;
    Ok(Redirect::to(&format!("/ui/groups/{}", group.id)).into_response())
}
