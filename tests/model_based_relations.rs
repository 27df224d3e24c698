//! Model-based test of relations (issue 6): 3,000 seeded random inserts (single and
//! multi-row), updates, single and range deletes, RELATEs and UNRELATEs over users, posts,
//! comments and tags joined by BELONGS TO (ON DELETE CASCADE, SET NULL and RESTRICT),
//! HAS MANY and MANY TO MANY, on memory and on LMDB, checked against a plain in-memory
//! reference. Every statement must succeed with the reference's output or fail with its
//! error code; after every statement the engine's records must be the reference's, with
//! every foreign key pointing at a record. Every 50 operations `CHECK DATABASE` must be clean
//! and INCLUDE, COUNT(relation), EXISTS and relation paths over every record must answer as
//! the reference does; every 10, INCLUDE for a random post, comment and user.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvm::storage::{Durability, LmdbEngine, LmdbOptions};
use kvm::{Database, Options, Rows, Value};

use common::Rng;

const OPS: u32 = 3_000;
/// Records are inserted with ids below these; foreign keys are drawn from a slightly
/// larger range, so some point past every record.
const USERS: u64 = 20;
const POSTS: u64 = 40;
const COMMENTS: u64 = 80;
const TAGS: u64 = 8;

const SCHEMA: &str = "
DEFINE MODEL users (id INT PRIMARY KEY, name STRING NOT NULL, INDEX by_name (name),
  RELATION authored HAS MANY posts (author_id),
  RELATION edited HAS MANY posts (editor_id),
  RELATION comments HAS MANY comments (user_id));
DEFINE MODEL posts (id INT PRIMARY KEY, author_id INT NOT NULL, editor_id INT,
  RELATION author BELONGS TO users (author_id) ON DELETE CASCADE,
  RELATION editor BELONGS TO users (editor_id) ON DELETE SET NULL,
  RELATION comments HAS MANY comments (post_id),
  RELATION tags MANY TO MANY tags);
DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, user_id INT,
  RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE,
  RELATION user BELONGS TO users (user_id));
DEFINE MODEL tags (id INT PRIMARY KEY);
";

const DANGLING: &str = "kvm.dangling_reference";
const UNIQUE: &str = "kvm.unique_violation";
const RESTRICT: &str = "kvm.restrict";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Post {
    author: i64,
    editor: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Comment {
    post: i64,
    user: Option<i64>,
}

/// The reference: every model's records and the (post, tag) pairs of `posts_tags`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    users: BTreeSet<i64>,
    posts: BTreeMap<i64, Post>,
    comments: BTreeMap<i64, Comment>,
    tags: BTreeSet<i64>,
    links: BTreeSet<(i64, i64)>,
}

/// What a statement must do: succeed with this output, or fail with one of these codes
/// (several when a statement breaks more than one rule and either may be reported first).
type Expect = Result<String, BTreeSet<&'static str>>;

fn fail(codes: impl IntoIterator<Item = &'static str>) -> Expect {
    Err(codes.into_iter().collect())
}

/// How often the interesting paths were taken, so the test shows it exercised them.
#[derive(Debug, Default)]
struct Stats {
    cascaded_posts: usize,
    cascaded_comments: usize,
    cascaded_links: usize,
    set_null: usize,
    restrict_cleared: usize,
    errors: BTreeMap<&'static str, usize>,
    ok: usize,
}

impl State {
    fn user_exists(&self, u: Option<i64>) -> bool {
        u.is_none_or(|u| self.users.contains(&u))
    }

    fn insert_users(&mut self, ids: &[i64]) -> Expect {
        let mut next = self.clone();
        for id in ids {
            if !next.users.insert(*id) {
                return fail([UNIQUE]);
            }
        }
        *self = next;
        Ok(format!("inserted {}", ids.len()))
    }

    fn insert_posts(&mut self, rows: &[(i64, Post)]) -> Expect {
        let mut next = self.clone();
        let mut codes = BTreeSet::new();
        for (id, p) in rows {
            if next.posts.insert(*id, *p).is_some() {
                codes.insert(UNIQUE);
            }
            if !self.user_exists(Some(p.author)) || !self.user_exists(p.editor) {
                codes.insert(DANGLING);
            }
        }
        if !codes.is_empty() {
            return Err(codes);
        }
        *self = next;
        Ok(format!("inserted {}", rows.len()))
    }

    fn insert_comments(&mut self, rows: &[(i64, Comment)]) -> Expect {
        let mut next = self.clone();
        let mut codes = BTreeSet::new();
        for (id, c) in rows {
            if next.comments.insert(*id, *c).is_some() {
                codes.insert(UNIQUE);
            }
            if !self.posts.contains_key(&c.post) || !self.user_exists(c.user) {
                codes.insert(DANGLING);
            }
        }
        if !codes.is_empty() {
            return Err(codes);
        }
        *self = next;
        Ok(format!("inserted {}", rows.len()))
    }

    fn insert_tag(&mut self, id: i64) -> Expect {
        if !self.tags.insert(id) {
            return fail([UNIQUE]);
        }
        Ok("inserted 1".into())
    }

    /// `UPDATE posts SET author_id = …` / `editor_id = …` on the posts `which` selects.
    fn update_posts(
        &mut self,
        which: impl Fn(i64, &Post) -> bool,
        author: Option<i64>,
        editor: Option<Option<i64>>,
    ) -> Expect {
        let ids: Vec<i64> =
            self.posts.iter().filter(|(k, p)| which(**k, p)).map(|(k, _)| *k).collect();
        if ids.is_empty() {
            return Ok("updated 0".into());
        }
        if author.is_some_and(|a| !self.users.contains(&a))
            || editor.is_some_and(|e| !self.user_exists(e))
        {
            return fail([DANGLING]);
        }
        for id in &ids {
            let p = self.posts.get_mut(id).unwrap();
            if let Some(a) = author {
                p.author = a;
            }
            if let Some(e) = editor {
                p.editor = e;
            }
        }
        Ok(format!("updated {}", ids.len()))
    }

    /// `UPDATE comments SET post_id = … / user_id = … WHERE id = c`.
    fn update_comment(&mut self, c: i64, post: Option<i64>, user: Option<Option<i64>>) -> Expect {
        if !self.comments.contains_key(&c) {
            return Ok("updated 0".into());
        }
        if post.is_some_and(|p| !self.posts.contains_key(&p))
            || user.is_some_and(|u| !self.user_exists(u))
        {
            return fail([DANGLING]);
        }
        let rec = self.comments.get_mut(&c).unwrap();
        if let Some(p) = post {
            rec.post = p;
        }
        if let Some(u) = user {
            rec.user = u;
        }
        Ok("updated 1".into())
    }

    fn cascade_post(&mut self, p: i64, stats: &mut Stats) {
        if self.posts.remove(&p).is_none() {
            return;
        }
        let (c, l) = (self.comments.len(), self.links.len());
        self.comments.retain(|_, c| c.post != p);
        self.links.retain(|(s, _)| *s != p);
        stats.cascaded_comments += c - self.comments.len();
        stats.cascaded_links += l - self.links.len();
    }

    /// `DELETE FROM users WHERE id >= lo AND id < hi`: CASCADE to the posts they wrote (and
    /// on to those posts' comments and join rows), SET NULL on the posts they edited, then
    /// RESTRICT on the comments they wrote that are left; all or nothing.
    fn delete_users(&mut self, lo: i64, hi: i64, stats: &mut Stats) -> Expect {
        let mut next = self.clone();
        let mut st = Stats::default();
        let gone: Vec<i64> = self.users.range(lo..hi).copied().collect();
        for u in &gone {
            next.users.remove(u);
            let authored: Vec<i64> =
                next.posts.iter().filter(|(_, p)| p.author == *u).map(|(k, _)| *k).collect();
            st.cascaded_posts += authored.len();
            for p in authored {
                next.cascade_post(p, &mut st);
            }
            for p in next.posts.values_mut() {
                if p.editor == Some(*u) {
                    p.editor = None;
                    st.set_null += 1;
                }
            }
        }
        let wrote =
            |s: &State| s.comments.values().any(|c| c.user.is_some_and(|u| gone.contains(&u)));
        if wrote(&next) {
            return fail([RESTRICT]);
        }
        // Comments that would have RESTRICTed the delete went with their posts.
        stats.restrict_cleared += usize::from(wrote(self));
        *self = next;
        stats.cascaded_posts += st.cascaded_posts;
        stats.cascaded_comments += st.cascaded_comments;
        stats.cascaded_links += st.cascaded_links;
        stats.set_null += st.set_null;
        Ok(format!("deleted {}", gone.len()))
    }

    fn delete_posts(&mut self, lo: i64, hi: i64, stats: &mut Stats) -> Expect {
        let gone: Vec<i64> = self.posts.range(lo..hi).map(|(k, _)| *k).collect();
        for p in &gone {
            self.cascade_post(*p, stats);
        }
        Ok(format!("deleted {}", gone.len()))
    }

    fn delete_comments(&mut self, lo: i64, hi: i64) -> Expect {
        let gone: Vec<i64> = self.comments.range(lo..hi).map(|(k, _)| *k).collect();
        for c in &gone {
            self.comments.remove(c);
        }
        Ok(format!("deleted {}", gone.len()))
    }

    fn delete_tag(&mut self, t: i64, stats: &mut Stats) -> Expect {
        if !self.tags.remove(&t) {
            return Ok("deleted 0".into());
        }
        let l = self.links.len();
        self.links.retain(|(_, x)| *x != t);
        stats.cascaded_links += l - self.links.len();
        Ok("deleted 1".into())
    }

    fn relate(&mut self, p: i64, t: i64) -> Expect {
        if !self.posts.contains_key(&p) || !self.tags.contains(&t) {
            return fail([DANGLING]);
        }
        Ok(format!("related {}", u8::from(self.links.insert((p, t)))))
    }

    fn unrelate(&mut self, p: i64, t: i64) -> Expect {
        Ok(format!("unrelated {}", u8::from(self.links.remove(&(p, t)))))
    }

    fn comments_of_post(&self, p: i64) -> Vec<i64> {
        self.comments.iter().filter(|(_, c)| c.post == p).map(|(k, _)| *k).collect()
    }

    fn tags_of_post(&self, p: i64) -> Vec<i64> {
        self.links.iter().filter(|(s, _)| *s == p).map(|(_, t)| *t).collect()
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an INT, got {other:?}"),
    }
}

fn opt_int(v: &Value) -> Option<i64> {
    match v {
        Value::Null => None,
        other => Some(int(other)),
    }
}

fn col(rows: &Rows, name: &str) -> usize {
    rows.columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows.columns))
}

fn field<'a>(obj: &'a Value, name: &str) -> &'a Value {
    match obj {
        Value::Object(m) => m.get(name).unwrap_or_else(|| panic!("no field {name} in {obj:?}")),
        other => panic!("expected an object, got {other:?}"),
    }
}

/// A field of an included record that may be null: records store no null fields (absent
/// means null).
fn nullable_field(obj: &Value, name: &str) -> Option<i64> {
    match obj {
        Value::Object(m) => m.get(name).and_then(opt_int),
        other => panic!("expected an object, got {other:?}"),
    }
}

/// The `id`s of an included array of records, in the order given.
fn included_ids(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(items) => items.iter().map(|o| int(field(o, "id"))).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

fn first_col_ints(rows: &Rows) -> Vec<i64> {
    rows.rows.iter().map(|r| int(&r[0])).collect()
}

fn query(db: &Database, kql: &str) -> Rows {
    db.query(kql, ()).unwrap_or_else(|e| panic!("{kql}: {e}"))
}

/// The engine's whole state, read back with plain SELECTs.
fn read_state(db: &Database) -> State {
    let mut s = State::default();
    for r in query(db, "SELECT id, name FROM users ORDER BY id").rows {
        let id = int(&r[0]);
        assert_eq!(r[1], Value::String(format!("u{id}")));
        s.users.insert(id);
    }
    for r in query(db, "SELECT id, author_id, editor_id FROM posts ORDER BY id").rows {
        s.posts.insert(int(&r[0]), Post { author: int(&r[1]), editor: opt_int(&r[2]) });
    }
    for r in query(db, "SELECT id, post_id, user_id FROM comments ORDER BY id").rows {
        s.comments.insert(int(&r[0]), Comment { post: int(&r[1]), user: opt_int(&r[2]) });
    }
    s.tags = first_col_ints(&query(db, "SELECT id FROM tags ORDER BY id")).into_iter().collect();
    let links = query(db, "SELECT source_id, target_id FROM posts_tags").rows;
    s.links = links.iter().map(|r| (int(&r[0]), int(&r[1]))).collect();
    assert_eq!(s.links.len(), links.len(), "a (post, tag) pair is in posts_tags twice");
    s
}

/// Referential integrity of the engine's own data, independent of the reference.
fn check_integrity(s: &State, at: &str) {
    for (id, p) in &s.posts {
        assert!(s.users.contains(&p.author), "{at}: post {id} has dangling author {p:?}");
        assert!(s.user_exists(p.editor), "{at}: post {id} has dangling editor {p:?}");
    }
    for (id, c) in &s.comments {
        assert!(s.posts.contains_key(&c.post), "{at}: comment {id} has dangling post {c:?}");
        assert!(s.user_exists(c.user), "{at}: comment {id} has dangling user {c:?}");
    }
    for (p, t) in &s.links {
        assert!(s.posts.contains_key(p) && s.tags.contains(t), "{at}: dangling join row {p}-{t}");
    }
}

/// The engine's whole state is the reference's, and every foreign key points at a record.
fn state_check(db: &Database, r: &State, at: &str) {
    let got = read_state(db);
    check_integrity(&got, at);
    assert_eq!(got, *r, "{at}: engine state (left) differs from the reference (right)");
}

/// [`state_check`], `CHECK DATABASE`, and the relation reads over every record.
fn full_check(db: &Database, r: &State, at: &str) {
    state_check(db, r, at);
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{at}: {check}");

    let rows = query(db, "SELECT id, COUNT(comments), COUNT(tags) FROM posts ORDER BY id");
    let want: Vec<Vec<Value>> = r
        .posts
        .keys()
        .map(|p| {
            let n = |v: Vec<i64>| Value::Int(v.len() as i64);
            vec![Value::Int(*p), n(r.comments_of_post(*p)), n(r.tags_of_post(*p))]
        })
        .collect();
    assert_eq!(rows.rows, want, "{at}: COUNT(comments), COUNT(tags) per post");

    let rows = query(
        db,
        "SELECT id, COUNT(authored), COUNT(edited), COUNT(comments) FROM users ORDER BY id",
    );
    let want: Vec<Vec<Value>> = r
        .users
        .iter()
        .map(|u| {
            let n = |k: usize| Value::Int(k as i64);
            vec![
                Value::Int(*u),
                n(r.posts.values().filter(|p| p.author == *u).count()),
                n(r.posts.values().filter(|p| p.editor == Some(*u)).count()),
                n(r.comments.values().filter(|c| c.user == Some(*u)).count()),
            ]
        })
        .collect();
    assert_eq!(rows.rows, want, "{at}: COUNT(authored), COUNT(edited), COUNT(comments) per user");

    // INCLUDE over every post at once (one batched read per relation).
    let rows = query(db, "SELECT id FROM posts ORDER BY id INCLUDE comments, tags");
    let (ci, ti) = (col(&rows, "comments"), col(&rows, "tags"));
    assert_eq!(first_col_ints(&rows), r.posts.keys().copied().collect::<Vec<_>>(), "{at}");
    for row in &rows.rows {
        let p = int(&row[0]);
        assert_eq!(included_ids(&row[ci]), r.comments_of_post(p), "{at}: comments of post {p}");
        assert_eq!(included_ids(&row[ti]), r.tags_of_post(p), "{at}: tags of post {p}");
    }

    let rows = query(db, "SELECT id FROM posts WHERE EXISTS tags ORDER BY id");
    let want: Vec<i64> =
        r.posts.keys().copied().filter(|p| !r.tags_of_post(*p).is_empty()).collect();
    assert_eq!(first_col_ints(&rows), want, "{at}: posts WHERE EXISTS tags");
    let rows = query(db, "SELECT id FROM users WHERE NOT EXISTS comments ORDER BY id");
    let want: Vec<i64> = r
        .users
        .iter()
        .copied()
        .filter(|u| !r.comments.values().any(|c| c.user == Some(*u)))
        .collect();
    assert_eq!(first_col_ints(&rows), want, "{at}: users WHERE NOT EXISTS comments");

    let rows = query(db, "SELECT id, author.name, editor.name FROM posts ORDER BY id");
    let name = |u: Option<i64>| u.map_or(Value::Null, |u| Value::String(format!("u{u}")));
    let want: Vec<Vec<Value>> = r
        .posts
        .iter()
        .map(|(k, p)| vec![Value::Int(*k), name(Some(p.author)), name(p.editor)])
        .collect();
    assert_eq!(rows.rows, want, "{at}: author.name, editor.name per post");

    // Semi-joins (users by index or key, then posts by the fk index; comments by the fk
    // index, then the posts they name) return what the reference says.
    let semi = [
        "SELECT id FROM posts WHERE author.name >= 'u1' AND author.name < 'u2' ORDER BY id",
        "SELECT id FROM posts WHERE editor.id BETWEEN 3 AND 9 ORDER BY id",
        "SELECT id FROM posts WHERE EXISTS comments (WHERE user_id = 5) ORDER BY id",
    ];
    let wants: [Vec<i64>; 3] = [
        r.posts
            .iter()
            .filter(|(_, p)| format!("u{}", p.author).starts_with("u1"))
            .map(|(k, _)| *k)
            .collect(),
        r.posts
            .iter()
            .filter(|(_, p)| p.editor.is_some_and(|e| (3..=9).contains(&e)))
            .map(|(k, _)| *k)
            .collect(),
        r.posts
            .keys()
            .copied()
            .filter(|k| r.comments.values().any(|c| c.post == *k && c.user == Some(5)))
            .collect(),
    ];
    for (kql, want) in semi.iter().zip(wants) {
        match db.execute(&format!("EXPLAIN {kql}"), ()) {
            Ok(kvm::Output::Plan(p)) => assert!(p.contains("semi-join"), "{kql}: {p}"),
            other => panic!("{kql}: {other:?}"),
        }
        assert_eq!(first_col_ints(&query(db, kql)), want, "{at}: {kql}");
    }
}

/// INCLUDE and relation paths for one random post, comment and user.
fn spot_check(db: &Database, r: &State, rng: &mut Rng, at: &str) {
    let p = rng.below(POSTS + 2);
    let rows = query(
        db,
        &format!("SELECT id FROM posts WHERE id = {p} INCLUDE author, editor, comments, tags"),
    );
    match r.posts.get(&p) {
        None => assert!(rows.rows.is_empty(), "{at}: post {p} is gone: {rows:?}"),
        Some(post) => {
            assert_eq!(rows.rows.len(), 1, "{at}: post {p}: {rows:?}");
            let row = &rows.rows[0];
            assert_eq!(int(field(&row[col(&rows, "author")], "id")), post.author, "{at}");
            let editor = &row[col(&rows, "editor")];
            assert_eq!(
                post.editor,
                (*editor != Value::Null).then(|| int(field(editor, "id"))),
                "{at}: editor of post {p}"
            );
            let comments = &row[col(&rows, "comments")];
            assert_eq!(included_ids(comments), r.comments_of_post(p), "{at}: comments of {p}");
            if let Value::Array(items) = comments {
                for o in items {
                    let c = r.comments[&int(field(o, "id"))];
                    assert_eq!(int(field(o, "post_id")), p, "{at}");
                    assert_eq!(nullable_field(o, "user_id"), c.user, "{at}");
                }
            }
            assert_eq!(included_ids(&row[col(&rows, "tags")]), r.tags_of_post(p), "{at}");
        }
    }

    let c = rng.below(COMMENTS + 2);
    let rows = query(db, &format!("SELECT id FROM comments WHERE id = {c} INCLUDE post, user"));
    match r.comments.get(&c) {
        None => assert!(rows.rows.is_empty(), "{at}: comment {c} is gone: {rows:?}"),
        Some(cm) => {
            assert_eq!(rows.rows.len(), 1, "{at}: comment {c}: {rows:?}");
            let post = &rows.rows[0][col(&rows, "post")];
            assert_eq!(int(field(post, "id")), cm.post, "{at}: post of comment {c}");
            assert_eq!(int(field(post, "author_id")), r.posts[&cm.post].author, "{at}");
            let user = &rows.rows[0][col(&rows, "user")];
            assert_eq!(
                cm.user,
                (*user != Value::Null).then(|| int(field(user, "id"))),
                "{at}: user of comment {c}"
            );
        }
    }

    let u = rng.below(USERS + 2);
    let rows = query(
        db,
        &format!("SELECT id FROM users WHERE id = {u} INCLUDE authored, edited, comments"),
    );
    if !r.users.contains(&u) {
        assert!(rows.rows.is_empty(), "{at}: user {u} is gone: {rows:?}");
    } else {
        assert_eq!(rows.rows.len(), 1, "{at}: user {u}: {rows:?}");
        let row = &rows.rows[0];
        let posts = |f: &dyn Fn(&Post) -> bool| -> Vec<i64> {
            r.posts.iter().filter(|(_, p)| f(p)).map(|(k, _)| *k).collect()
        };
        assert_eq!(included_ids(&row[col(&rows, "authored")]), posts(&|p| p.author == u), "{at}");
        assert_eq!(
            included_ids(&row[col(&rows, "edited")]),
            posts(&|p| p.editor == Some(u)),
            "{at}"
        );
        let want: Vec<i64> =
            r.comments.iter().filter(|(_, c)| c.user == Some(u)).map(|(k, _)| *k).collect();
        assert_eq!(included_ids(&row[col(&rows, "comments")]), want, "{at}: comments of {u}");
    }

    // A path through a BELONGS TO in WHERE.
    let rows =
        query(db, &format!("SELECT id FROM comments WHERE post.author_id = {u} ORDER BY id"));
    let want: Vec<i64> =
        r.comments.iter().filter(|(_, c)| r.posts[&c.post].author == u).map(|(k, _)| *k).collect();
    assert_eq!(first_col_ints(&rows), want, "{at}: comments WHERE post.author_id = {u}");
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "NULL".to_string(), |v| v.to_string())
}

/// A key for a foreign key or a RELATE: mostly one of `existing`, else any key below `n`
/// or just past it (pointing at no record).
fn pick(rng: &mut Rng, existing: &BTreeSet<i64>, n: u64) -> i64 {
    if existing.is_empty() || rng.below(5) == 0 {
        return rng.below(n + 2);
    }
    *existing.iter().nth(rng.below(existing.len() as u64) as usize).unwrap()
}

/// One random statement and what the reference says it must do.
fn step(r: &mut State, rng: &mut Rng, stats: &mut Stats) -> (String, Expect) {
    let user = |r: &State, rng: &mut Rng| pick(rng, &r.users, USERS);
    let maybe_user = |r: &State, rng: &mut Rng| (rng.below(4) != 0).then(|| user(r, rng));
    let post = |r: &State, rng: &mut Rng| {
        pick(rng, &r.posts.keys().copied().collect::<BTreeSet<_>>(), POSTS)
    };
    match rng.below(40) {
        0..=3 => {
            let n = 1 + rng.below(2) as usize;
            let ids: Vec<i64> = (0..n).map(|_| rng.below(USERS)).collect();
            let values: Vec<String> =
                ids.iter().map(|id| format!("{{id: {id}, name: 'u{id}'}}")).collect();
            (format!("INSERT INTO users [{}]", values.join(", ")), r.insert_users(&ids))
        }
        4..=9 => {
            let n = if rng.below(4) == 0 { 2 } else { 1 };
            let rows: Vec<(i64, Post)> = (0..n)
                .map(|_| {
                    let id = rng.below(POSTS);
                    let editor = (rng.below(3) != 0).then(|| user(r, rng));
                    (id, Post { author: user(r, rng), editor })
                })
                .collect();
            let values: Vec<String> = rows
                .iter()
                .map(|(id, p)| {
                    format!("{{id: {id}, author_id: {}, editor_id: {}}}", p.author, opt(p.editor))
                })
                .collect();
            (format!("INSERT INTO posts [{}]", values.join(", ")), r.insert_posts(&rows))
        }
        10..=16 => {
            let n = 1 + rng.below(3) as usize;
            let rows: Vec<(i64, Comment)> = (0..n)
                .map(|_| {
                    let (id, post) = (rng.below(COMMENTS), post(r, rng));
                    // Often by the post's author, so deleting the author cascades the comment
                    // away before its RESTRICT is checked.
                    let user = match r.posts.get(&post) {
                        Some(p) if rng.below(3) == 0 => Some(p.author),
                        _ => maybe_user(r, rng),
                    };
                    (id, Comment { post, user })
                })
                .collect();
            let values: Vec<String> = rows
                .iter()
                .map(|(id, c)| {
                    // An absent nullable field is null too.
                    match c.user {
                        None if id % 2 == 0 => format!("{{id: {id}, post_id: {}}}", c.post),
                        u => format!("{{id: {id}, post_id: {}, user_id: {}}}", c.post, opt(u)),
                    }
                })
                .collect();
            (format!("INSERT INTO comments [{}]", values.join(", ")), r.insert_comments(&rows))
        }
        17 => {
            let t = rng.below(TAGS);
            (format!("INSERT INTO tags {{id: {t}}}"), r.insert_tag(t))
        }
        18 | 19 => {
            let (p, a) = (post(r, rng), user(r, rng));
            (
                format!("UPDATE posts SET author_id = {a} WHERE id = {p}"),
                r.update_posts(|k, _| k == p, Some(a), None),
            )
        }
        20 | 21 => {
            let (p, e) = (post(r, rng), maybe_user(r, rng));
            (
                format!("UPDATE posts SET editor_id = {} WHERE id = {p}", opt(e)),
                r.update_posts(|k, _| k == p, None, Some(e)),
            )
        }
        22 => {
            let (a, e) = (user(r, rng), maybe_user(r, rng));
            (
                format!("UPDATE posts SET editor_id = {} WHERE author_id = {a}", opt(e)),
                r.update_posts(|_, p| p.author == a, None, Some(e)),
            )
        }
        23 | 24 => {
            let (c, u) = (rng.below(COMMENTS + 2), maybe_user(r, rng));
            (
                format!("UPDATE comments SET user_id = {} WHERE id = {c}", opt(u)),
                r.update_comment(c, None, Some(u)),
            )
        }
        25 => {
            let (c, p) = (rng.below(COMMENTS + 2), post(r, rng));
            (
                format!("UPDATE comments SET post_id = {p} WHERE id = {c}"),
                r.update_comment(c, Some(p), None),
            )
        }
        26 | 27 => {
            let u = rng.below(USERS);
            (format!("DELETE FROM users WHERE id = {u}"), r.delete_users(u, u + 1, stats))
        }
        28 => {
            let lo = rng.below(USERS);
            let hi = lo + 1 + rng.below(4);
            (
                format!("DELETE FROM users WHERE id >= {lo} AND id < {hi}"),
                r.delete_users(lo, hi, stats),
            )
        }
        29 => {
            let p = rng.below(POSTS);
            (format!("DELETE FROM posts WHERE id = {p}"), r.delete_posts(p, p + 1, stats))
        }
        30 => {
            let lo = rng.below(POSTS);
            let hi = lo + 1 + rng.below(5);
            (
                format!("DELETE FROM posts WHERE id >= {lo} AND id < {hi}"),
                r.delete_posts(lo, hi, stats),
            )
        }
        31 => {
            let c = rng.below(COMMENTS);
            (format!("DELETE FROM comments WHERE id = {c}"), r.delete_comments(c, c + 1))
        }
        32 => {
            let lo = rng.below(COMMENTS);
            let hi = lo + 1 + rng.below(8);
            (
                format!("DELETE FROM comments WHERE id >= {lo} AND id < {hi}"),
                r.delete_comments(lo, hi),
            )
        }
        33 => {
            let t = rng.below(TAGS);
            (format!("DELETE FROM tags WHERE id = {t}"), r.delete_tag(t, stats))
        }
        34..=37 => {
            let (p, t) = (post(r, rng), pick(rng, &r.tags, TAGS));
            // Either direction names the same relation.
            let kql = if rng.below(3) == 0 {
                format!("RELATE tags:{t} TO posts:{p}")
            } else {
                format!("RELATE posts:{p} TO tags:{t}")
            };
            (kql, r.relate(p, t))
        }
        _ => {
            let (p, t) = (post(r, rng), pick(rng, &r.tags, TAGS));
            (format!("UNRELATE posts:{p} TO tags:{t}"), r.unrelate(p, t))
        }
    }
}

fn run(db: &Database, seed: u64) {
    let out = db.execute_script("schema", SCHEMA);
    for o in out {
        o.result.unwrap();
    }
    let mut rng = Rng(seed);
    let mut r = State::default();
    let mut stats = Stats::default();
    for op in 1..=OPS {
        let (kql, want) = step(&mut r, &mut rng, &mut stats);
        let got = db.execute(&kql, ());
        let at = format!("op {op}: {kql}");
        match (&got, &want) {
            (Ok(out), Ok(text)) => {
                assert_eq!(out.to_string(), *text, "{at}");
                stats.ok += 1;
            }
            (Err(e), Err(codes)) => {
                assert!(codes.contains(e.code()), "{at}: expected one of {codes:?}, got {e}");
                *stats.errors.entry(e.code()).or_default() += 1;
            }
            _ => panic!("{at}: expected {want:?}, got {got:?}"),
        }
        if op % 50 == 0 {
            full_check(db, &r, &at);
        } else {
            // Every cascade as the reference has it; a failed statement wrote nothing.
            state_check(db, &r, &at);
        }
        if op % 10 == 0 {
            spot_check(db, &r, &mut rng, &at);
        }
    }
    full_check(db, &r, "end");
    eprintln!(
        "seed {seed:#x}: final users {} posts {} comments {} tags {} links {}; {stats:?}",
        r.users.len(),
        r.posts.len(),
        r.comments.len(),
        r.tags.len(),
        r.links.len()
    );
    // The run went through every path worth testing.
    assert!(stats.cascaded_posts > 20, "{stats:?}");
    assert!(stats.cascaded_comments > 20, "{stats:?}");
    assert!(stats.cascaded_links > 20, "{stats:?}");
    assert!(stats.set_null > 10, "{stats:?}");
    assert!(stats.restrict_cleared > 5, "{stats:?}");
    for code in [DANGLING, UNIQUE, RESTRICT] {
        assert!(stats.errors.get(code).is_some_and(|n| *n > 10), "{code}: {stats:?}");
    }
}

const SEED: u64 = 0x5EED_0006_2E1A_7105;

#[test]
fn relations_match_a_reference_model_on_memory() {
    run(&Database::memory().unwrap(), SEED);
}

#[test]
fn relations_match_a_reference_model_on_lmdb() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LmdbOptions {
        map_size: 1 << 26,
        durability: Durability::Process,
        ..LmdbOptions::default()
    };
    let engine = LmdbEngine::open(dir.path().join("db.kvm"), opts).unwrap();
    let db = Database::with_engine(Arc::new(engine), Options::default()).unwrap();
    run(&db, SEED);
}
