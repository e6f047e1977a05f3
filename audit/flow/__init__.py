"""Static flow analysis of submissions: index, config guards, data taint, execution trace."""
