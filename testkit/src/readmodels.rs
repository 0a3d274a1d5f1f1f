//! The read models as a user of them sees them: every table dumped in a canonical order, and
//! two dumps compared (a live projection against a rebuild from the log).

use serde_json::Value;

/// Every read-model table of `pool`'s database, in a canonical order, as text: equal dumps,
/// equal models.
pub async fn dump(pool: &sqlx::PgPool) -> String {
    let mut out = String::new();
    for (table, order) in [
        ("users", "id"),
        ("rooms", "id"),
        ("members", "room_id, user_id"),
        ("invites", "id"),
        ("messages", "position"),
        ("reactions", "message_id, emoji, user_id"),
        ("mentions", "user_id, message_id"),
        ("projection_checkpoints", "projection"),
    ] {
        let sql = format!(
            "SELECT COALESCE(json_agg(t ORDER BY {order})::text, '[]') FROM (SELECT * FROM {table}) t"
        );
        let (rows,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        // `updated_at` of the checkpoint is wall-clock time, not a projection of the log.
        let rows: Value = serde_json::from_str(&rows).unwrap();
        let rows: Vec<Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("updated_at");
                r
            })
            .collect();
        out.push_str(&format!(
            "{table}: {}\n",
            serde_json::to_string(&rows).unwrap()
        ));
    }
    out
}

/// Asserts two dumps are equal, naming only the rows that differ.
#[track_caller]
pub fn assert_same_models(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let mut report = String::new();
    for (l, r) in left.lines().zip(right.lines()) {
        if l == r {
            continue;
        }
        let (table, l_rows) = l.split_once(": ").unwrap();
        let r_rows = r.split_once(": ").unwrap().1;
        let l_rows: Vec<Value> = serde_json::from_str(l_rows).unwrap();
        let r_rows: Vec<Value> = serde_json::from_str(r_rows).unwrap();
        let only_l: Vec<_> = l_rows
            .iter()
            .filter(|x| !r_rows.contains(x))
            .take(3)
            .collect();
        let only_r: Vec<_> = r_rows
            .iter()
            .filter(|x| !l_rows.contains(x))
            .take(3)
            .collect();
        report.push_str(&format!(
            "{table}: left only {only_l:?}\n{table}: right only {only_r:?}\n"
        ));
    }
    panic!("{what}:\n{report}");
}
