//! The blog of `examples/blog.kql`, through the Rust API: run it with
//! `cargo run --example blog`.
//!
//! It opens a database file in a fresh temporary directory (removed at the end), defines
//! users, posts, comments, tags and sessions with their relations, and then shows the API an
//! application uses: `execute` with parameters (never spliced into the text), `RELATE`,
//! atomic counters from several threads, `transaction`, `query_as` into serde structs whose
//! fields hold the records `INCLUDE` loaded, the query builder with `.include(…)`,
//! `populate`, cursor pagination with `Rows::next_cursor`, error codes, and a cascading
//! delete.

use kvm::builder::Order;
use kvm::{params, Database};
use serde::Deserialize;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The schema of `examples/blog.kql`, without its comments. Each relation is declared once,
/// on the side that reads it; `posts.comments` is the HAS MANY side of `comments.post_id`.
const SCHEMA: &str = "
DEFINE MODEL users (
  id     STRING PRIMARY KEY,
  email  STRING UNIQUE LOWERCASE TRIM NOT NULL,
  name   STRING NOT NULL,
  status ENUM('active', 'suspended') DEFAULT 'active',
  INDEX by_status (status)
);
DEFINE MODEL posts (
  id           STRING PRIMARY KEY,
  author_id    STRING NOT NULL,
  title        STRING NOT NULL,
  published_on DATE NOT NULL,
  views        U64 DEFAULT 0,
  RELATION author   BELONGS TO users (author_id) ON DELETE CASCADE,
  RELATION comments HAS MANY comments (post_id) ON DELETE CASCADE,
  RELATION tags     MANY TO MANY tags,
  INDEX by_author_date (author_id, published_on),
  INDEX by_date (published_on)
);
DEFINE MODEL comments (
  id        STRING PRIMARY KEY,
  post_id   STRING NOT NULL,
  author_id STRING,
  body      STRING NOT NULL,
  posted_on DATE NOT NULL,
  RELATION author BELONGS TO users (author_id) ON DELETE SET NULL,
  INDEX by_post_date (post_id, posted_on)
);
DEFINE MODEL tags (name STRING PRIMARY KEY);
DEFINE MODEL sessions (
  id      STRING PRIMARY KEY,
  user_id STRING NOT NULL,
  RELATION user BELONGS TO users (user_id) ON DELETE CASCADE
) WITH TIMESTAMPS;
";

// Rows deserialize by column name, so a struct names the columns it wants; the records an
// INCLUDE loads are nested objects (or arrays of them), so they fill nested structs.
// Fields a struct leaves out (here `email`, `status`, `post_id`, …) are ignored.

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Tag {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Comment {
    body: String,
    posted_on: String,
    /// `BELONGS TO` with a nullable foreign key: `None` once the author is deleted.
    author: Option<User>,
}

/// A post with the relations `INCLUDE author, tags, comments (…)` loads.
#[derive(Debug, Deserialize)]
struct Post {
    id: String,
    title: String,
    published_on: String,
    views: u64,
    author: User,
    tags: Vec<Tag>,
    comments: Vec<Comment>,
}

/// A row of plain columns: the id and title of a post.
#[derive(Debug, Deserialize)]
struct Headline {
    id: String,
    title: String,
}

fn main() -> Result<()> {
    // A real LMDB file, in a directory that is removed when `dir` drops. `Database::memory()`
    // opens a throwaway in-memory database the same way.
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("blog.kvm"))?;

    // `execute` runs every statement of the text in order, each its own commit.
    db.execute_batch(SCHEMA)?;
    let models: Vec<String> = db.catalog()?.models.keys().cloned().collect();
    println!("== models: {}", models.join(", "));

    seed(&db)?;
    counters(&db)?;
    transaction(&db)?;
    includes(&db)?;
    builder(&db)?;
    pagination(&db)?;
    errors(&db)?;
    cascade(&db)?;
    Ok(())
}

/// Records are inserted with parameters: `$1`, `$2`, … by position, or `$name`.
fn seed(db: &Database) -> Result<()> {
    let users = [
        ("ann", " Ann@Example.com ", "Ann", "active"),
        ("bo", "bo@example.com", "Bo", "active"),
        ("cy", "cy@example.com", "Cy", "suspended"),
    ];
    for (id, email, name, status) in users {
        db.execute(
            "INSERT INTO users { id: $1, email: $2, name: $3, status: $4 }",
            params![id, email, name, status],
        )?;
    }
    let posts = [
        ("p1", "ann", "Hello, KVM", "2024-03-01"),
        ("p2", "ann", "Indexes explained", "2024-03-08"),
        ("p3", "bo", "Relations 101", "2024-03-05"),
        ("p4", "cy", "Old news", "2024-02-20"),
    ];
    // A prepared statement is parsed and planned once.
    let insert_post = db.prepare(
        "INSERT INTO posts { id: $id, author_id: $author, title: $title, published_on: $on }",
    )?;
    for (id, author, title, on) in posts {
        insert_post
            .execute(params! { "id" => id, "author" => author, "title" => title, "on" => on })?;
    }
    // A list of records is one atomic batch.
    db.execute(
        "INSERT INTO comments [
           { id: 'c1', post_id: 'p1', author_id: 'cy',  body: 'First!',        posted_on: '2024-03-01' },
           { id: 'c2', post_id: 'p1', author_id: 'bo',  body: 'Nice intro.',   posted_on: '2024-03-02' },
           { id: 'c3', post_id: 'p1', author_id: 'ann', body: 'Thanks, both!', posted_on: '2024-03-03' },
           { id: 'c4', post_id: 'p3', author_id: 'ann', body: 'Great post.',   posted_on: '2024-03-06' },
           { id: 'c5', post_id: 'p4', author_id: 'bo',  body: 'Agreed.',       posted_on: '2024-02-21' }
         ]",
        (),
    )?;
    // UPSERT inserts, or updates the record with that key: running it twice is harmless.
    for tag in ["intro", "kvm", "rust", "kvm"] {
        db.execute("UPSERT INTO tags { name: $1 }", params![tag])?;
    }
    for (post, tag) in [
        ("p1", "intro"),
        ("p1", "kvm"),
        ("p2", "kvm"),
        ("p3", "rust"),
        ("p3", "kvm"),
        ("p4", "kvm"),
    ] {
        db.execute("RELATE posts:$1 TO tags:$2", params![post, tag])?;
    }
    // Sessions expire on their own, 30 days from now. `UPDATE … EXPIRE IN` renews a TTL; a
    // duration parameter bound to NULL (`None`) would make the record permanent again.
    db.execute(
        "INSERT INTO sessions [{ id: 's-ann', user_id: 'ann' }, { id: 's-cy', user_id: 'cy' }] \
         EXPIRE IN $ttl",
        params! { "ttl" => "30d" },
    )?;
    db.execute("UPDATE sessions WHERE id = $1 EXPIRE IN $2", params!["s-ann", "7d"])?;
    let count = |model: &str| db.model(model).and_then(|q| q.count());
    println!(
        "== seeded: {} users, {} posts, {} comments, {} tags, {} tag links, {} sessions",
        count("users")?,
        count("posts")?,
        count("comments")?,
        count("tags")?,
        count("posts_tags")?,
        count("sessions")?,
    );
    Ok(())
}

/// `views += 1` is an atomic read-modify-write: 4 threads × 25 increments is exactly 100.
fn counters(db: &Database) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                s.spawn(move || -> kvm::Result<()> {
                    let bump = db.prepare("UPDATE posts SET views += 1 WHERE id = $1")?;
                    for _ in 0..25 {
                        bump.execute(params!["p1"])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a counter thread panicked")??;
        }
        Ok(())
    })?;
    db.execute("UPDATE posts SET views += 7 WHERE id = 'p3'", ())?;
    #[derive(Debug, Deserialize)]
    struct Views {
        id: String,
        views: u64,
    }
    let top: Vec<Views> =
        db.query_as("SELECT id, views FROM posts ORDER BY views DESC, id LIMIT 2", ())?;
    println!("== most viewed (p1 got 4 threads x 25 views):");
    for p in top {
        println!("  {}: {} views", p.id, p.views);
    }
    Ok(())
}

/// `db.transaction` runs the closure as one serializable commit (re-running it on a
/// conflict); an `Err` from the closure rolls everything back.
fn transaction(db: &Database) -> Result<()> {
    db.transaction(|tx| {
        tx.execute("INSERT INTO users { id: 'dee', email: 'dee@example.com', name: 'Dee' }", ())?;
        tx.execute(
            "INSERT INTO posts { id: 'p5', author_id: 'dee', title: 'Joining in', \
             published_on: '2024-03-10' }",
            (),
        )?;
        tx.execute("INSERT INTO sessions { id: 's-dee', user_id: 'dee' } EXPIRE IN '30d'", ())?;
        Ok(())
    })?;
    println!("== transaction: Dee, her first post and her session, in one commit");
    // A failing statement fails the closure (`?`), and nothing it wrote is committed: the
    // DELETE below is rolled back with the INSERT that names an unknown post.
    let failed = db.transaction(|tx| {
        tx.execute("DELETE FROM comments WHERE post_id = 'p1'", ())?;
        tx.execute(
            "INSERT INTO comments { id: 'c9', post_id: 'p404', body: 'lost', posted_on: '2024-03-11' }",
            (),
        )?;
        Ok(())
    });
    let code = failed.err().map_or("none", |e| e.code());
    let left = db.model("comments")?.filter("post_id").eq("p1").count()?;
    println!("== a failed transaction ({code}) rolled back: p1 still has {left} comments");
    Ok(())
}

/// `query_as` fills nested structs with what INCLUDE loaded.
fn includes(db: &Database) -> Result<()> {
    let posts: Vec<Post> = db.query_as(
        "SELECT id, title, published_on, views FROM posts WHERE author_id = $1 \
         ORDER BY published_on DESC \
         INCLUDE author, tags, comments (ORDER BY posted_on DESC LIMIT 2 INCLUDE author)",
        params!["ann"],
    )?;
    println!("== Ann's posts, newest first, with tags and the latest two comments:");
    for p in &posts {
        let tags: Vec<&str> = p.tags.iter().map(|t| t.name.as_str()).collect();
        println!(
            "  {} {:?} by {} on {}, {} views, tags [{}]",
            p.id,
            p.title,
            p.author.name,
            p.published_on,
            p.views,
            tags.join(", ")
        );
        for c in &p.comments {
            let who = c.author.as_ref().map_or("[deleted]", |u| u.name.as_str());
            println!("    {} ({}): {}", who, c.posted_on, c.body);
        }
    }

    // COUNT(relation) reads index entries only.
    #[derive(Debug, Deserialize)]
    struct Counts {
        id: String,
        n_comments: u64,
        n_tags: u64,
    }
    let counts: Vec<Counts> = db.query_as(
        "SELECT id, COUNT(comments) AS n_comments, COUNT(tags) AS n_tags FROM posts ORDER BY id",
        (),
    )?;
    println!("== comments and tags per post:");
    for c in counts {
        println!("  {}: comments {}, tags {}", c.id, c.n_comments, c.n_tags);
    }
    Ok(())
}

/// The builder makes the same statements as KQL text (values bound as parameters), so
/// they plan and EXPLAIN alike.
fn builder(db: &Database) -> Result<()> {
    #[derive(Debug, Deserialize)]
    struct PostWithAuthor {
        id: String,
        title: String,
        author: User,
    }
    let q = db
        .model("posts")?
        .filter("author.status")
        .eq("active")
        .order_by("id", Order::Asc)
        .select(&["id", "title"])
        .include("author");
    println!("== builder: {}", q.to_kql());
    println!("{}", q.explain()?);
    for p in q.all_as::<PostWithAuthor>()? {
        println!("  {} {:?} by {} ({})", p.id, p.title, p.author.name, p.author.id);
    }
    // Lazy loading: one relation of a record fetched earlier, as a `kvm::Value` (an array
    // of objects for a MANY TO MANY).
    if let Some(kvm::Value::Array(tags)) = db.populate("posts", "p3", "tags")? {
        let names: Vec<String> = tags
            .iter()
            .filter_map(|t| match t {
                kvm::Value::Object(fields) => fields.get("name").map(kvm::display_value),
                _ => None,
            })
            .collect();
        println!("== populate(posts, p3, tags): {}", names.join(", "));
    }
    Ok(())
}

/// Keyset pagination: bind the cursor of the previous page (`AFTER NULL` is the first page)
/// until a page comes back without one.
fn pagination(db: &Database) -> Result<()> {
    let page =
        db.prepare("SELECT id, title FROM posts ORDER BY published_on DESC LIMIT 2 AFTER $cursor")?;
    println!("== the front page, two posts at a time:");
    let mut cursor: Option<String> = None;
    for n in 1.. {
        let rows = page.query(params! { "cursor" => cursor.clone() })?;
        let headlines: Vec<Headline> = kvm::json::rows_as(&rows)?;
        let line: Vec<String> =
            headlines.iter().map(|h| format!("{} {:?}", h.id, h.title)).collect();
        println!("  page {n}: {}", line.join(", "));
        match rows.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// Errors carry a stable code; a failed statement writes nothing.
fn errors(db: &Database) -> Result<()> {
    let err = db
        .execute("INSERT INTO posts { id: 'p9', author_id: 'nobody', title: 'x', published_on: '2024-01-01' }", ())
        .err()
        .ok_or("a dangling author was accepted")?;
    println!("== error {}: {err}", err.code());
    let err = db
        .execute("INSERT INTO users { id: 'ann2', email: 'ANN@example.com', name: 'Ann' }", ())
        .err()
        .ok_or("a duplicate email was accepted")?;
    println!("== error {}: {err}", err.code());
    Ok(())
}

/// Deleting Cy cascades to her post (with its comment and tag link) and her session, and
/// clears the author of her comment on p1 (SET NULL) — one commit.
fn cascade(db: &Database) -> Result<()> {
    db.execute("DELETE FROM users WHERE id = $1", params!["cy"])?;
    let left: Vec<Headline> = db.query_as("SELECT id, title FROM posts ORDER BY id", ())?;
    let ids: Vec<&str> = left.iter().map(|h| h.id.as_str()).collect();
    println!("== after deleting Cy: posts {}", ids.join(", "));
    let c1: Vec<Comment> =
        db.query_as("SELECT body, posted_on FROM comments WHERE id = 'c1' INCLUDE author", ())?;
    if let Some(c) = c1.first() {
        println!("  comment c1 {:?} now has author {:?}", c.body, c.author.as_ref().map(|u| &u.id));
    }
    println!("  sessions left: {}", db.model("sessions")?.count()?);
    println!("{}", db.execute("CHECK DATABASE", ())?);
    Ok(())
}
