"""Scheduled group pushes (群发): plan, schedule, deliver through every guide, and report."""
