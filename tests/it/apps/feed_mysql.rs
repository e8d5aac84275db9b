//! The feed (tests/it/apps/feed.rs) on real MariaDB/MySQL tables (issue 33): `POST
//! /events` inserts into `{prefix}_events` (autocommit, one at a time, so ids commit in
//! order); the projector reads past `{prefix}_checkpoint.position` and moves it.

use mysql_async::prelude::Queryable as _;

/// The tables `{prefix}_events` and `{prefix}_checkpoint` in the database of `url`.
#[derive(Clone)]
pub struct Tables {
    pub url: String,
    pub prefix: String,
}

pub type Connection = mysql_async::Conn;

pub async fn connect(tables: &Tables) -> Connection {
    mysql_async::Conn::from_url(tables.url.as_str()).await.unwrap()
}

/// Creates the tables afresh, the checkpoint at 0.
pub async fn prepare(tables: &Tables) {
    let mut c = connect(tables).await;
    let p = &tables.prefix;
    c.query_drop(format!(
        "drop table if exists {p}_events, {p}_checkpoint;
         create table {p}_events (id bigint auto_increment primary key, body text not null);
         create table {p}_checkpoint (name varchar(32) primary key, position bigint not null);
         insert into {p}_checkpoint values ('view', 0);"
    ))
    .await
    .unwrap();
    let _ = c.disconnect().await;
}

/// Drops the tables.
pub async fn remove(tables: &Tables) {
    if let Ok(mut c) = mysql_async::Conn::from_url(tables.url.as_str()).await {
        let p = &tables.prefix;
        let _ = c.query_drop(format!("drop table if exists {p}_events, {p}_checkpoint")).await;
        let _ = c.disconnect().await;
    }
}

pub async fn append(c: &mut Connection, tables: &Tables, body: &str) -> bool {
    c.exec_drop(format!("insert into {}_events (body) values (?)", tables.prefix), (body,)).await.is_ok()
}

/// Applies up to `max` entries past the checkpoint and moves it; returns how many.
pub async fn consume(c: &mut Connection, tables: &Tables, max: u64) -> u64 {
    let p = &tables.prefix;
    let ids: Vec<i64> = c
        .exec(
            format!(
                "select id from {p}_events where id > (select position from {p}_checkpoint where name = 'view') \
                 order by id limit ?"
            ),
            (max,),
        )
        .await
        .unwrap();
    let Some(last) = ids.last() else { return 0 };
    c.exec_drop(format!("update {p}_checkpoint set position = ? where name = 'view'"), (last,)).await.unwrap();
    ids.len() as u64
}
