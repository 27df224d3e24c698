//! The chainable query builder (`db.model("users")?.filter("age").gte(18)…`): builds the
//! same statements KQL text does, so both plan and EXPLAIN alike.
