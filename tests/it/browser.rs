//! The web UI in a real headless Chromium driven over WebDriver (chromedriver, which
//! `tests/run.sh` starts and names in `FAULTLINE_TEST_WEBDRIVER`): sign in, the groups page,
//! a filter, a group, a state change, a crash with its fault frame in view, the full/most
//! relevant toggle, another thread. Screenshots of each page go to `docs/screenshots/` when
//! `FAULTLINE_SCREENSHOTS=1`.

use crate::common;

use std::time::Duration;

use common::{
    fixture_bytes, generated_bytes, multipart, post, services_required, settled, TestServer,
};
use fantoccini::{Client, ClientBuilder, Locator};

/// A headless Chromium session, or `None` (said) when no WebDriver is configured outside
/// `tests/run.sh`.
async fn browser(profile: &std::path::Path) -> Option<Client> {
    let Ok(url) = std::env::var("FAULTLINE_TEST_WEBDRIVER") else {
        assert!(
            !services_required(),
            "FAULTLINE_TEST_WEBDRIVER is not set: run the suite through tests/run.sh"
        );
        eprintln!("skipped: no WebDriver (set FAULTLINE_TEST_WEBDRIVER, or run tests/run.sh)");
        return None;
    };
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    Some(
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("chromedriver accepts a session"),
    )
}

async fn submit(server: &TestServer, dump: &[u8], version: &str) -> String {
    let (status, reply) = post(
        server,
        "/submit",
        Some("multipart/form-data; boundary=XyZ"),
        &[],
        multipart(
            "XyZ",
            &[
                ("ProductName", None, b"Crasher"),
                ("Version", None, version.as_bytes()),
                ("upload_file_minidump", Some("a.dmp"), dump),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = reply.trim().strip_prefix("CrashID=bp-").unwrap().to_owned();
    settled(server, &id).await;
    id
}

/// Saves a screenshot of the page as `docs/screenshots/{name}.png` when asked to.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var("FAULTLINE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/screenshots")
            .join(format!("{name}.png"));
        std::fs::write(path, png).unwrap();
    }
}

/// Whether the element is inside the window now (scrolled into view).
async fn in_view(client: &Client, css: &str) -> bool {
    let answer = client
        .execute(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect(); \
             return r.top >= 0 && r.bottom <= window.innerHeight;",
            vec![serde_json::json!(css)],
        )
        .await
        .unwrap();
    answer.as_bool().unwrap()
}

/// The page's address once `arrived` says the click's navigation happened (a driver does not
/// always wait for one on a loaded machine); the address seen last after 10 s.
async fn address_when(
    client: &Client,
    arrived: impl Fn(&str, Option<&str>, Option<&str>) -> bool,
) -> Result<String, fantoccini::error::CmdError> {
    for _ in 0..100 {
        let url = client.current_url().await?;
        if arrived(url.path(), url.query(), url.fragment()) {
            return Ok(url.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(client.current_url().await?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engineer_triages_a_crash_in_a_browser() {
    let profile = tempfile::tempdir().unwrap();
    let Some(client) = browser(profile.path()).await else {
        return;
    };
    let server = TestServer::start().await;
    server
        .upload("crasher.debug", generated_bytes("crasher.debug"))
        .await;
    server
        .upload_fixture(
            "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
        )
        .await;
    let wild = submit(&server, &generated_bytes("wild-read.dmp"), "1.4.2").await;
    submit(&server, &generated_bytes("wild-read.dmp"), "1.4.3").await;
    submit(&server, &generated_bytes("null-write.dmp"), "1.4.3").await;
    let windows = submit(
        &server,
        &fixture_bytes("minidumps/rust-minidump/test.dmp"),
        "0.9",
    )
    .await;
    let result = async {
        // Signing in from the page the link pointed at comes back to it.
        client.goto(&server.url("/ui/")).await?;
        assert!(client.current_url().await?.path().ends_with("/ui/sign-in"));
        screenshot(&client, "sign-in").await;
        client
            .find(Locator::Id("token"))
            .await?
            .send_keys(&server.admin_token)
            .await?;
        client
            .find(Locator::Css("form button[type=submit]"))
            .await?
            .click()
            .await?;
        let url = address_when(&client, |path, _, _| path == "/ui/").await?;
        assert!(url.ends_with("/ui/"), "{url}");
        let rows = client
            .find_all(Locator::Css("table.groups tbody tr"))
            .await?;
        assert_eq!(rows.len(), 3, "three groups");
        screenshot(&client, "groups").await;

        // Filter by class through the form: the URL carries it, one group is left.
        let select = client
            .find(Locator::Css("select[name=fault_class]"))
            .await?;
        select.select_by_value("wild-read").await?;
        client
            .find(Locator::Css("form.filters button"))
            .await?
            .click()
            .await?;
        let url = address_when(&client, |_, query, _| {
            query.unwrap_or("").contains("fault_class=wild-read")
        })
        .await?;
        assert!(url.contains("fault_class=wild-read"), "{url}");
        let rows = client
            .find_all(Locator::Css("table.groups tbody tr"))
            .await?;
        assert_eq!(rows.len(), 1);
        let events = client.find(Locator::Css("td.events")).await?.text().await?;
        assert_eq!(events, "2");

        // The group: resolve it in a release.
        client.find(Locator::Css("td.sig a")).await?.click().await?;
        let url = address_when(&client, |path, _, _| path.starts_with("/ui/groups/")).await?;
        assert!(url.contains("/ui/groups/"), "{url}");
        screenshot(&client, "group").await;
        client
            .find(Locator::Css("select[name=state]"))
            .await?
            .select_by_value("resolved")
            .await?;
        let release = client.find(Locator::Css("input[name=resolved_in]")).await?;
        release.clear().await?;
        release.send_keys("1.4.4").await?;
        // The script saves in place: the page is not reloaded (a marker set on it survives).
        client
            .execute("window.stay = 42; return true;", vec![])
            .await?;
        client
            .find(Locator::XPath("//button[text()='Save']"))
            .await?
            .click()
            .await?;
        let state = client
            .wait()
            .for_element(Locator::Css("p.tags .state.resolved"))
            .await?
            .text()
            .await?;
        assert_eq!(state, "resolved in 1.4.4");
        let stayed = client.execute("return window.stay === 42;", vec![]).await?;
        assert_eq!(stayed, serde_json::json!(true), "updated in place");

        // One of its crashes: the fault frame is highlighted and in view on arrival.
        let links = client.find_all(Locator::Css("table.crashes a")).await?;
        assert_eq!(links.len(), 2);
        let mut hrefs = Vec::new();
        for link in &links {
            hrefs.push(link.attr("href").await?.unwrap_or_default());
        }
        assert!(hrefs.iter().any(|h| h.contains(&wild)), "{hrefs:?}");
        links[0].click().await?;
        let url = address_when(&client, |_, _, fragment| fragment == Some("fault")).await?;
        assert!(url.ends_with("#fault"), "{url}");
        let fault = client.find(Locator::Css("tr#fault.fault")).await?;
        assert!(fault.text().await?.contains("crasher::linux::wild_read"));
        assert!(in_view(&client, "tr#fault").await, "scrolled into view");
        client
            .execute("window.scrollTo(0, 0); return true;", vec![])
            .await?;
        screenshot(&client, "crash").await;
        let relevant = client
            .find_all(Locator::Css("table.frames tbody tr"))
            .await?
            .len();
        client
            .find(Locator::LinkText("Full stack"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .for_element(Locator::Css("table.frames[data-mode=full]"))
            .await?;
        let full = client
            .find_all(Locator::Css("table.frames tbody tr"))
            .await?
            .len();
        assert!(full > relevant, "{full} > {relevant}");
        client
            .find(Locator::LinkText("Most relevant"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .for_element(Locator::Css("table.frames[data-mode=relevant]"))
            .await?;
        assert_eq!(
            client
                .find_all(Locator::Css("table.frames tbody tr"))
                .await?
                .len(),
            relevant
        );

        // A crash with two threads: open the other one.
        client
            .goto(&server.url(&format!("/ui/crashes/{windows}")))
            .await?;
        let threads = client.find_all(Locator::Css("ul.threads li a")).await?;
        assert_eq!(threads.len(), 2);
        threads[1].click().await?;
        client
            .wait()
            .for_element(Locator::Css("ul.threads li.selected a[href*='thread=1']"))
            .await?;
        let title = client.find(Locator::Id("thread")).await?.text().await?;
        assert!(title.starts_with("Thread 1"), "{title}");
        assert!(
            client.find_all(Locator::Css("tr#fault")).await?.is_empty(),
            "not the crashing thread"
        );

        // The symbol pages: what is missing (with its upload command), and what is stored.
        client.goto(&server.url("/ui/symbols/missing")).await?;
        let rows = client
            .find_all(Locator::Css("table.missing tbody tr"))
            .await?;
        assert!(
            !rows.is_empty(),
            "the Windows dump's system modules have no symbols here"
        );
        let command = client
            .find(Locator::Css("td.cmd code"))
            .await?
            .text()
            .await?;
        assert!(
            command.starts_with("faultline upload --server http://"),
            "{command}"
        );
        screenshot(&client, "missing-symbols").await;
        client
            .goto(&server.url("/ui/symbols?q=test_app.pdb"))
            .await?;
        let stored = client
            .find_all(Locator::Css("table.stored tbody tr"))
            .await?;
        assert_eq!(stored.len(), 1);
        screenshot(&client, "symbols").await;

        // Release health: twenty sessions of 1.4.3 started now, one crashed; the releases list
        // links the release, whose page draws its crash-free line; the groups of 1.4.3 ranked
        // by rate from the column's header.
        let now = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
        let now = String::from_utf8(now.stdout).unwrap().trim().to_owned();
        let updates: Vec<(&str, serde_json::Value)> = (0..20)
            .map(|i| {
                let status = if i == 0 { "crashed" } else { "exited" };
                ("session", serde_json::json!({"sid": format!("b{i}"), "did": format!("p{i}"), "init": true, "started": now, "status": status, "attrs": {"release": "1.4.3"}}))
            })
            .collect();
        let (status, reply) = common::send_envelope_items(&server, &updates).await;
        assert_eq!(status, 200, "{reply}");
        client.goto(&server.url("/ui/releases?project=default")).await?;
        client.find(Locator::LinkText("1.4.3")).await?.click().await?;
        let address = address_when(&client, |path, _, _| path.starts_with("/ui/releases/1.4.3")).await?;
        assert!(address.contains("/ui/releases/1.4.3"), "{address}");
        let figures = client.find(Locator::Css("table.health tbody tr")).await?.text().await?;
        assert!(figures.contains("95.00 %"), "19 of 20 sessions crash-free: {figures}");
        let line = client.find(Locator::Css("svg.line polyline")).await?;
        let points = line.attr("points").await?.unwrap_or_default();
        assert!(!points.is_empty(), "today's crash-free point");
        let height = client
            .execute("return document.querySelector('svg.line').getBoundingClientRect().height;", vec![])
            .await?;
        assert!(height.as_f64().unwrap_or(0.0) > 50.0, "the chart is drawn with its style: {height}");
        screenshot(&client, "release").await;
        client.goto(&server.url("/ui/?project=default&release=1.4.3")).await?;
        client.find(Locator::LinkText("Per 1,000 sessions")).await?.click().await?;
        let address = address_when(&client, |_, query, _| query.is_some_and(|q| q.contains("sort=rate"))).await?;
        assert!(address.contains("sort=rate"), "{address}");
        let rates = client.find_all(Locator::Css("td.rate")).await?;
        assert_eq!(rates.len(), 2, "two groups crashed in 1.4.3");
        assert_eq!(rates[0].text().await?, "50.000", "one crash in 20 sessions");

        // A narrow screen: the page still fits without sideways scrolling of the page itself.
        client.set_window_size(390, 844).await?;
        client.goto(&server.url("/ui/")).await?;
        let overflow = client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await?;
        assert_eq!(
            overflow,
            serde_json::json!(true),
            "the groups page fits a phone"
        );
        screenshot(&client, "groups-narrow").await;
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    client.close().await.ok();
    tokio::time::sleep(Duration::from_millis(10)).await;
    result.expect("the browser session");
}
